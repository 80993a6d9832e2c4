"""Audio frontends benchmark: forward and forward+backward time of LEAF, the mel filterbank,
time-domain filterbanks and SincNet on a batch of 32 one-second 16 kHz clips, on CPU, in one
run (round robin, medians), with parameter counts and the ratio of each to the mel
filterbank's time.

The issue's target: LEAF within 10x of the mel filterbank's forward time (a direct 401-tap
convolution is about 25x; the PyTorch ports about 300x: EfficientLEAF's README). Rows:
``leaf`` (fast mode, the default), ``leaf exact`` (the reference computation: a 401-tap
convolution at every sample), and ``leaf, port-style`` (the reference computation with
PCEN's smoother as a Python loop over frames, as the PyTorch ports and SpeechBrain run it),
which stands in for the ports we cannot install here.

    python benchmarks/audio_frontends.py          # full -> RESULTS.md
    python benchmarks/audio_frontends.py --quick  # fewer repeats, printed only
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch

from _results import publish
from lutece.audio.frontends import PCEN, Leaf, MelFilterbank, SincNet, TDFilterbank

SECTION = "## Audio frontends (lutece.audio.frontends)"


class _LoopPCEN(torch.nn.Module):
    """PCEN with the moving average as a Python loop over frames (the ports' smoother)."""

    def __init__(self, pcen: PCEN) -> None:
        super().__init__()
        self.pcen = pcen

    def forward(self, energies: torch.Tensor) -> torch.Tensor:
        p = {k: v[:, None] for k, v in self.pcen.constrained_parameters().items()}
        smooth = p["smooth_coef"][:, 0]
        state = energies[..., 0]
        smoothed = []
        for t in range(energies.shape[-1]):
            state = smooth * energies[..., t] + (1 - smooth) * state
            smoothed.append(state)
        m = torch.stack(smoothed, dim=-1)
        out = energies / (self.pcen.floor + m) ** p["alpha"] + p["delta"]
        return out ** (1 / p["root"]) - p["delta"] ** (1 / p["root"])


def _frontends() -> dict[str, torch.nn.Module]:
    port = Leaf(mode="exact")
    port.compress = _LoopPCEN(port.compress)
    return {"mel": MelFilterbank(), "leaf": Leaf(), "leaf exact": Leaf(mode="exact"),
            "leaf, port-style": port, "tdfbank": TDFilterbank(), "sincnet": SincNet()}


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; print only")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    repeats = 3 if args.quick else 11
    batch = args.batch
    x = torch.randn(batch, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    frontends = _frontends()
    times: dict[str, dict[str, list[float]]] = {n: {"fwd": [], "fwdbwd": []} for n in frontends}

    def forward(module):
        with torch.no_grad():
            module(x)

    def forward_backward(module):
        module.zero_grad(set_to_none=True)
        module(x.requires_grad_(False)).square().mean().backward()

    for module in frontends.values():  # warm-up
        forward(module)
        if any(p.requires_grad for p in module.parameters()):
            forward_backward(module)
    for _ in range(repeats):  # round robin: shared-machine noise hits every row alike
        for name, module in frontends.items():
            times[name]["fwd"].append(_seconds(lambda m=module: forward(m)))
            if any(p.requires_grad for p in module.parameters()):
                times[name]["fwdbwd"].append(_seconds(lambda m=module: forward_backward(m)))
    mel_fwd = statistics.median(times["mel"]["fwd"])
    lines = [SECTION, "",
             f"{datetime.date.today()}, {platform.machine()} CPU, {torch.get_num_threads()} "
             f"threads, torch {torch.__version__}; batch of {batch} one-second 16 kHz clips, "
             f"medians of {repeats} round-robin repeats.", "",
             "| frontend | parameters | forward (ms) | / mel forward | forward+backward (ms) |",
             "|---|---|---|---|---|"]
    for name, module in frontends.items():
        fwd = statistics.median(times[name]["fwd"])
        both = times[name]["fwdbwd"]
        params = sum(p.numel() for p in module.parameters())
        both_text = f"{statistics.median(both) * 1e3:.1f}" if both else "n/a (no parameters)"
        lines.append(f"| {name} | {params} | {fwd * 1e3:.1f} | {fwd / mel_fwd:.1f} | "
                     f"{both_text} |")
    leaf_ratio = statistics.median(times["leaf"]["fwd"]) / mel_fwd
    exact_ratio = statistics.median(times["leaf exact"]["fwd"]) / mel_fwd
    lines += ["", f"LEAF (fast) forward is {leaf_ratio:.1f}x the mel filterbank's (target: "
              f"<= 10x); the exact reference computation is {exact_ratio:.1f}x."]
    publish(SECTION, "\n".join(lines) + "\n", args.quick)


if __name__ == "__main__":
    main()
