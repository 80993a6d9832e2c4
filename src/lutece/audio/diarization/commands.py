"""The diarization command line.

    lutece diarize IN.wav [IN2.wav ...] -o OUT_DIR [--model CKPT] [--num-speakers N]
        [--min-speakers N] [--max-speakers N]          one OUT_DIR/IN.rttm per file
    lutece diarization simulate OUT_DIR [--conversations 100] [--speakers 1-3]
        [--voices 20] [--source FOLDER] [--snr 5-20] [--reverb 0.0] [--seed 0]
    lutece diarization train [DATA_DIR] --out CKPT [--quick] [--kind dive|pit]
        [--steps N] [--batch-size N] [--collar 0.25] [--frontend mel|leaf]
    lutece diarization evaluate REF.rttm HYP.rttm [--uem UEM] [--collar 0.25]
        [--skip-overlap] [--csv OUT.csv]

``train`` runs under ``torchrun`` unchanged (one process per device, DDP); only rank 0
writes the checkpoint. Without ``--model``, ``diarize`` runs the default offline
pipeline (silero-vad + pretrained d-vectors + spectral clustering).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

__all__ = ["add_parsers", "run_diarize", "run_diarization"]

QUICK_STEPS = 600


def _range(kind: type, low_bound: float):
    """An argparse type for ``X`` or ``LOW-HIGH`` -> ``(low, high)`` with ``low_bound <= low
    <= high``."""
    name = "N" if kind is int else "X"

    def parse(text: str) -> tuple:
        match = re.fullmatch(r"(-?[^-]+)(?:-(-?[^-]+))?", text.strip())
        try:
            if match is None:
                raise ValueError(text)
            low, high = match.groups()
            values = (kind(low), kind(high or low))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {name} or LOW-HIGH, got {text!r}") \
                from None
        if not low_bound <= values[0] <= values[1]:
            raise argparse.ArgumentTypeError(f"expected {low_bound} <= LOW <= HIGH, "
                                             f"got {text!r}")
        return values

    return parse


_speaker_range = _range(int, 1)
_float_range = _range(float, -float("inf"))


def add_parsers(commands: argparse._SubParsersAction) -> None:
    diarize = commands.add_parser(
        "diarize", help="who spoke when: one RTTM per audio file",
        description="Diarize audio files and write OUT_DIR/NAME.rttm for each. Without "
                    "--model, the default offline pipeline (silero-vad + pretrained "
                    "d-vectors + spectral clustering) is used.")
    diarize.add_argument("inputs", nargs="+", type=Path, metavar="IN.wav")
    diarize.add_argument("-o", "--out", type=Path, required=True, metavar="OUT_DIR")
    diarize.add_argument("--model", type=Path, default=None, metavar="CKPT",
                         help="a checkpoint from `lutece diarization train`")
    diarize.add_argument("--num-speakers", type=int, default=None)
    diarize.add_argument("--min-speakers", type=int, default=None)
    diarize.add_argument("--max-speakers", type=int, default=None)
    diarize.add_argument("--no-progress", action="store_true")

    diarization = commands.add_parser(
        "diarization", help="simulate data, train and evaluate diarization models",
        description="Simulate conversations, train DIVE, score RTTMs (DER).")
    actions = diarization.add_subparsers(dest="action", metavar="ACTION", required=True)

    simulate = actions.add_parser(
        "simulate", help="EEND-style simulated conversations as a Kaldi-style data dir")
    simulate.add_argument("out", type=Path, metavar="OUT_DIR")
    simulate.add_argument("--conversations", type=int, default=100)
    simulate.add_argument("--speakers", type=_speaker_range, default=(1, 3),
                          help="speakers per conversation, N or LOW-HIGH (default 1-3)")
    simulate.add_argument("--utterances", type=_speaker_range, default=(10, 20),
                          help="utterances per speaker, N or LOW-HIGH (default 10-20)")
    simulate.add_argument("--voices", type=int, default=20,
                          help="synthetic voices to draw speakers from (without --source)")
    simulate.add_argument("--first-voice", type=int, default=0,
                          help="index of the first synthetic voice (disjoint sets for "
                               "train/test)")
    simulate.add_argument("--source", type=Path, default=None,
                          help="a folder of single-speaker utterances (LibriSpeech layout or "
                               "one folder per speaker) instead of synthetic voices")
    simulate.add_argument("--sil-scale", type=float, default=2.0,
                          help="mean pause before each utterance, seconds (EEND's beta)")
    simulate.add_argument("--snr", type=_float_range, default=None,
                          help="add noise at this SNR in dB, X or LOW-HIGH")
    simulate.add_argument("--reverb", type=float, default=0.0,
                          help="probability of reverberating a conversation")
    simulate.add_argument("--seed", type=int, default=0)

    train = actions.add_parser("train", help="train DIVE (or the PIT baseline) on a data dir")
    train.add_argument("data", type=Path, nargs="?", default=None, metavar="DATA_DIR",
                       help="Kaldi-style dir with wav.scp and rttm (optional with --quick: "
                            "trains on simulated synthetic voices)")
    train.add_argument("--out", type=Path, required=True, metavar="CKPT")
    train.add_argument("--quick", action="store_true",
                       help=f"a small default model in minutes on CPU ({QUICK_STEPS} steps)")
    train.add_argument("--kind", choices=("dive", "pit"), default="dive")
    train.add_argument("--frontend", choices=("mel", "leaf"), default="mel")
    train.add_argument("--steps", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--chunk-seconds", type=float, default=8.0)
    train.add_argument("--collar", type=float, default=0.25,
                       help="seconds excluded around reference boundaries in the loss "
                            "(md-eval convention, +-collar; 0 disables)")
    train.add_argument("--max-speakers", type=int, default=4)
    train.add_argument("--channels", type=int, default=96)
    train.add_argument("--device", default="auto")
    train.add_argument("--checkpoint-dir", type=Path, default=None,
                       help="keep resumable training checkpoints here")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--no-progress", action="store_true")

    evaluate = actions.add_parser(
        "evaluate", help="DER per file and overall (pyannote.metrics)",
        description="Missed detection, false alarm, confusion and DER. --collar is in "
                    "md-eval's convention (+-collar around each reference boundary; "
                    "pyannote.metrics is called with twice that value).")
    evaluate.add_argument("reference", type=Path, metavar="REF.rttm")
    evaluate.add_argument("hypothesis", type=Path, metavar="HYP.rttm")
    evaluate.add_argument("--uem", type=Path, default=None)
    evaluate.add_argument("--collar", type=float, default=0.25)
    evaluate.add_argument("--skip-overlap", action="store_true")
    evaluate.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_diarize(args: argparse.Namespace) -> int:
    from .formats import write_rttm
    from .pipeline import check_speaker_bounds, diarize_file
    from .training import load_diarizer

    try:
        check_speaker_bounds("lutece diarize", args.num_speakers, args.min_speakers,
                             args.max_speakers)
    except ValueError as error:
        return _fail(str(error))
    missing = [str(path) for path in args.inputs if not path.is_file()]
    if missing:
        return _fail(f"no such file: {', '.join(missing)}")
    stems = [path.stem for path in args.inputs]
    if len(set(stems)) != len(stems):
        return _fail("two inputs share a file name; their RTTMs would overwrite each other")
    try:
        model = load_diarizer(args.model) if args.model is not None else None
        if model is None:
            from .clustering import default_pipeline

            model = default_pipeline()
    except (OSError, ValueError, ImportError) as error:
        return _fail(str(error))
    args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.inputs:
        try:
            annotation = diarize_file(path, model, num_speakers=args.num_speakers,
                                      min_speakers=args.min_speakers,
                                      max_speakers=args.max_speakers,
                                      progress=not args.no_progress)
        except (OSError, ValueError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            failures += 1
            continue
        target = args.out / f"{path.stem}.rttm"
        write_rttm(target, annotation)
        print(f"{path}: {len(annotation.labels())} speaker(s), "
              f"{annotation.get_timeline().support().duration():.1f} s of speech -> {target}")
    return 1 if failures else 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulate import (
        simulate_conversations,
        synthetic_utterances,
        utterances_from_folder,
        write_conversations,
    )

    try:
        if args.source is not None:
            sources = utterances_from_folder(args.source)
        else:
            sources = synthetic_utterances(args.voices, 24, seed=args.seed,
                                           first_speaker=args.first_voice)
        conversations = simulate_conversations(
            sources, args.conversations, num_speakers=args.speakers,
            utterances_per_speaker=args.utterances, sil_scale=args.sil_scale,
            snr_db=args.snr, reverb_probability=args.reverb, seed=args.seed)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    write_conversations(conversations, args.out)
    hours = sum(c.duration for c in conversations) / 3600
    print(f"{len(conversations)} conversations ({hours:.2f} h) -> {args.out} "
          f"(wav/, rttm, uem, wav.scp, segments, utt2spk, reco2dur)")
    return 0


def quick_training_data(seed: int = 0):
    """The simulated recordings ``train --quick`` learns from: 1-3 of 80 synthetic voices
    per conversation, 300 conversations of 3-6 utterances per speaker (voice variety
    matters more than hours here: 40 voices left pairs of high voices merged)."""
    from .simulate import simulate_conversations, synthetic_utterances

    voices = synthetic_utterances(80, 10, seed=seed)
    conversations = simulate_conversations(voices, 300, num_speakers=(1, 3),
                                           utterances_per_speaker=(3, 6), seed=seed + 1)
    return [(c.wave, c.annotation) for c in conversations]


def _train(args: argparse.Namespace) -> int:
    from .dive import DiveConfig
    from .training import (
        DiarizationTrainConfig,
        recordings_from_data_dir,
        save_diarizer,
        train_diarizer,
    )

    if args.data is None and not args.quick:
        return _fail("give a DATA_DIR (wav.scp + rttm), or --quick to train on simulated "
                     "synthetic voices")
    try:
        recordings = (recordings_from_data_dir(args.data) if args.data is not None
                      else quick_training_data(args.seed))
    except (OSError, ValueError) as error:
        return _fail(str(error))
    steps = args.steps or (QUICK_STEPS if args.quick else 3000)
    model_config = DiveConfig(kind=args.kind, frontend=args.frontend, channels=args.channels,
                              max_speakers=args.max_speakers if args.kind == "dive"
                              else min(args.max_speakers, 3))
    train_config = DiarizationTrainConfig(
        steps=steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        chunk_seconds=args.chunk_seconds, collar=args.collar, seed=args.seed,
        progress=not args.no_progress, device=args.device,
        checkpoint_dir=str(args.checkpoint_dir) if args.checkpoint_dir else None)
    model = train_diarizer(recordings, model_config, train_config)
    if int(os.environ.get("RANK", "0")) == 0:
        save_diarizer(model, args.out)
        print(f"trained {args.kind} for {steps} steps on {len(recordings)} recordings "
              f"-> {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .metrics import evaluate_files

    if args.collar < 0:
        return _fail(f"--collar must be >= 0 seconds, got {args.collar}")
    try:
        report = evaluate_files(args.reference, args.hypothesis, args.uem,
                                collar=args.collar, skip_overlap=args.skip_overlap)
    except (OSError, ValueError) as error:
        return _fail(str(error))
    print(report.to_text())
    if args.csv is not None:
        report.to_csv(args.csv)
    return 0


def run_diarization(args: argparse.Namespace) -> int:
    return {"simulate": _simulate, "train": _train, "evaluate": _evaluate}[args.action](args)
