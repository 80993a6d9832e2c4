"""Diarization benchmark: real-time factor of ``diarize`` on CPU, peak memory against
recording length, and training throughput.

- RTF = processing seconds / audio seconds on a simulated 3-speaker conversation (10
  minutes in the full run), for DIVE (the default training size, 96 channels; its existence
  score forced high so every window selects the maximum 4 speakers: the worst case), the
  PIT baseline, and the two clustering pipelines (silero-vad + d-vectors, the default
  without ``--model``; energy VAD + MFCC statistics). Target: DIVE RTF < 0.05 on 2 cores.
  pyannote.audio, the field's anchor, cannot run here (its weights are gated behind a hub
  token), so the clustering pipelines are the side-by-side reference.
- Peak memory: each length runs in a fresh process; the peak resident memory during
  ``diarize`` (Linux high-water mark, reset just before) over the memory before it shows
  what the recording's length costs beyond the wave itself.
- Training: frames per second of DIVE and PIT training steps (batch 16 x 8 s windows).
- Real speech: DER of the default pipeline on pyannote.audio's 30 s two-speaker sample when
  ``benchmarks/fetch_pyannote_sample.sh`` has unpacked it into ``.cache/`` (it is not ours
  to ship).

    python benchmarks/diarization.py          # full -> RESULTS.md
    python benchmarks/diarization.py --quick  # 30 s of audio, printed only
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _results import publish

SECTION = "## Diarization (lutece.audio.diarization)"
SAMPLE = Path(__file__).resolve().parent.parent / ".cache" / "pyannote_sample"


def _conversation(minutes: float, seed: int = 0):
    from lutece.audio.diarization.simulate import simulate_conversations, synthetic_utterances

    voices = synthetic_utterances(3, 20, seed=seed, first_speaker=900)
    per_speaker = max(int(minutes * 60 / 4.45), 2)  # ~2.5 s utterances + ~2 s pauses, 3 tracks
    conversation = simulate_conversations(voices, 1, num_speakers=3,
                                          utterances_per_speaker=per_speaker, seed=seed)[0]
    return conversation


def _dive(kind: str = "dive"):
    from lutece.audio.diarization.dive import DiveConfig, build_model

    torch.manual_seed(0)
    model = build_model(DiveConfig(kind=kind, max_speakers=4 if kind == "dive" else 3)).eval()
    if kind == "dive":
        with torch.no_grad():  # worst case: every window selects max_speakers speakers
            model.selector.existence.weight.zero_()
            model.selector.existence.bias.fill_(100.0)
    return model


def _systems(quick: bool):
    from lutece.audio.diarization.clustering import baseline_pipeline, default_pipeline

    return {"DIVE (96 ch, 4 speakers/window)": _dive("dive"), "PIT (96 ch)": _dive("pit"),
            "silero + d-vector + spectral": default_pipeline(),
            "energy + MFCC + AHC": baseline_pipeline()}


def _rtf(system, wave: np.ndarray) -> float:
    from lutece.audio.diarization.pipeline import diarize

    start = time.perf_counter()
    diarize(wave, 16000, system, progress=False)
    return (time.perf_counter() - start) / (len(wave) / 16000)


def _rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, MiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(minutes: float) -> None:
    """Run in a subprocess: resident memory just before ``diarize`` (wave, model and warm
    buffers loaded) and its peak during ``diarize``, whose high-water mark is reset first
    (``echo 5 > /proc/self/clear_refs``), so nothing allocated earlier counts."""
    from lutece.audio.diarization.pipeline import diarize

    torch.set_num_threads(2)
    wave = _conversation(minutes).wave
    model = _dive("dive")
    diarize(wave[:16000 * 20], 16000, model, progress=False)  # warm-up: allocator, kernels
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_mib("VmRSS")
    diarize(wave, 16000, model, progress=False)
    print(json.dumps({"minutes": len(wave) / 16000 / 60, "before": before,
                      "after": _rss_mib("VmHWM"), "wave": wave.nbytes / 2**20}))


def _memory(minutes: float) -> dict:
    output = subprocess.run([sys.executable, __file__, "--memory-child", str(minutes)],
                            capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def _training_throughput(kind: str, steps: int) -> float:
    from lutece.audio.diarization.dive import DiveConfig, build_model, dive_loss, pit_loss

    torch.manual_seed(0)
    config = DiveConfig(kind=kind, max_speakers=4 if kind == "dive" else 3)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch, frames = 16, 400
    waves = torch.randn(batch, frames * config.samples_per_frame) * 0.1
    labels = torch.zeros(batch, config.max_speakers, frames)
    labels[:, 0, 20:200] = 1
    labels[:, 1, 150:330] = 1
    labels[::2, 2, 300:390] = 1
    valid = torch.ones(batch, frames, dtype=torch.bool)
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        if kind == "dive":
            loss, _ = dive_loss(model(waves, labels, valid), labels, valid)
        else:
            loss, _ = pit_loss(model(waves), labels[:, :3], valid)
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    return batch * frames / float(np.median(times))


def _real_speech() -> str:
    wav, rttm = SAMPLE / "sample.wav", SAMPLE / "sample.rttm"
    if not (wav.exists() and rttm.exists()):
        return ("Real speech: pyannote.audio's sample not unpacked (run "
                "`bash benchmarks/fetch_pyannote_sample.sh`).")
    from lutece.audio.diarization.formats import read_rttm
    from lutece.audio.diarization.metrics import diarization_error_rate
    from lutece.audio.diarization.pipeline import diarize_file

    reference = read_rttm(rttm)["sample"]
    rows = []
    for label, options in (("estimated count", {}), ("num_speakers=2", {"num_speakers": 2})):
        hypothesis = diarize_file(wav, None, progress=False, **options)
        strict = diarization_error_rate(reference, hypothesis)
        collar = diarization_error_rate(reference, hypothesis, collar=0.25)
        rows.append(f"| {label} | {len(hypothesis.labels())} | {100 * strict:.1f} | "
                    f"{100 * collar:.1f} |")
    return "\n".join([
        "Real speech, pyannote.audio's 30 s two-speaker sample (sample.wav + sample.rttm), "
        "default pipeline (`lutece diarize IN.wav`, no model):", "",
        "| speakers | found | DER strict % | DER collar 0.25 s % |", "|---|---|---|---|",
        *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 s of audio; print only")
    parser.add_argument("--memory-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        _memory_child(args.memory_child)
        return
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    minutes = 0.5 if args.quick else 10.0
    wave = _conversation(minutes).wave
    seconds = len(wave) / 16000
    lines = [SECTION, "",
             f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores, torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads. Audio: simulated "
             f"3-speaker conversation, {seconds / 60:.1f} min at 16 kHz.", "",
             "| system | seconds | RTF | RTF / DIVE's |", "|---|---|---|---|"]
    rtfs = {}
    for name, system in _systems(args.quick).items():
        _rtf(system, wave[:16000 * 20])  # warm-up (weights, kernels)
        rtfs[name] = _rtf(system, wave)
    base = rtfs["DIVE (96 ch, 4 speakers/window)"]
    for name, rtf in rtfs.items():
        lines.append(f"| {name} | {rtf * seconds:.1f} | {rtf:.4f} | {rtf / base:.2f} |")
    verdict = "meets" if base < 0.05 else "misses"
    lines += ["", f"DIVE's RTF {base:.4f} {verdict} the < 0.05 target on 2 cores.", ""]

    lengths = (0.25, 0.5) if args.quick else (2.5, 5.0, 10.0)
    lines += ["Memory of `diarize` (DIVE) by recording length, fresh process each: resident "
              "memory just before the call (wave and model loaded, kernels warmed on 20 s) and "
              "the peak during it (high-water mark reset first):", "",
              "| minutes | wave MiB | RSS before MiB | peak during MiB | growth MiB |",
              "|---|---|---|---|---|"]
    for length in lengths:
        result = _memory(length)
        lines.append(f"| {result['minutes']:.1f} | {result['wave']:.1f} | "
                     f"{result['before']:.0f} | {result['after']:.0f} | "
                     f"{result['after'] - result['before']:.1f} |")
    steps = 2 if args.quick else 10
    dive_fps = _training_throughput("dive", steps)
    pit_fps = _training_throughput("pit", steps)
    lines += ["", "Training throughput (batch 16 x 8 s windows, 50 Hz frames, median step):",
              "", "| model | frames/s | audio seconds/s | ratio to PIT |", "|---|---|---|---|",
              f"| DIVE | {dive_fps:.0f} | {dive_fps / 50:.0f} | {dive_fps / pit_fps:.2f} |",
              f"| PIT | {pit_fps:.0f} | {pit_fps / 50:.0f} | 1.00 |", "", _real_speech(), ""]
    publish(SECTION, "\n".join(lines), args.quick)


if __name__ == "__main__":
    main()
