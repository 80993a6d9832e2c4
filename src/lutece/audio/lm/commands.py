"""The AudioLM command line: train every part from scratch on a folder of audio, then continue
a prompt (Borsos et al., "AudioLM", 2022, arXiv 2209.03143).

    lutece audiolm train-codec DATA_DIR --out CODEC.pt [--preset tiny|small|paper]
        [--config FILE.json] [--steps N] [--batch-size B] [--adversarial|--no-adversarial]
        [--resume|--restart]
    lutece audiolm train-semantic DATA_DIR --out TOKENIZER.pt [--features mfcc|chroma|...|ssl]
        [--mean-normalization] [--clusters K] [--ssl-steps N] [--layer L]
        [--resume|--restart]
    lutece audiolm train-stage semantic|coarse|fine DATA_DIR --tokenizer TOKENIZER.pt
        --codec CODEC.pt --out STAGE.pt [--steps N] [--batch-size B] [--resume|--restart]
    lutece audiolm continue PROMPT.wav --seconds 4 -o OUT.wav --tokenizer T.pt --codec C.pt
        --semantic S.pt --coarse C.pt --fine F.pt [--temperature 0.6,0.8,0.6] [--top-k K]
        [--seed N] [--include-prompt] [--resample]

DATA_DIR is any folder of WAV/FLAC/OGG files of any lengths (searched recursively), resampled
on load to the preset's rate and read as random crops (:mod:`lutece.audio.lm.data`). The order
is AudioLM's: the codec (acoustic tokens) and the semantic tokenizer first, independently;
then the three stages on their frozen tokens (``train-stage`` tokenizes the folder once into
a cache next to ``--out``, shared by the three stages); then ``continue``.

Every training command keeps a resumable checkpoint in ``OUT_STEM.checkpoints/`` next to
``--out`` (or ``--checkpoint-dir``): an interrupted run continues with ``--resume``;
``--restart`` deletes it and starts over; with neither, an existing checkpoint is an error,
so no run is overwritten by accident. ``train-stage``, the ``ssl`` encoder of
``train-semantic`` and ``train-codec`` run under ``torchrun`` unchanged (one process per
device, gradients averaged over them: :func:`lutece.train.train`, or for the codec's GAN loop
with its two optimizers :func:`~lutece.audio.lm.codec.train_codec`; ``--batch-size`` is per
process; rank 0 writes the outputs).

Errors (exit status 2) name the file and the fix: an empty folder, audio too short for the
crops or the prompt, a prompt at another sample rate, a tokenizer and codec at different rates
or with unaligned frame rates, a checkpoint of the wrong kind (e.g. a codec given as
``--semantic``) or of another configuration (a stage trained on another tokenizer or codec, a
checkpoint directory of another run). A training run that diverges (NaN) exits with 1 and
keeps its last good checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "run"]

STAGES = ("semantic", "coarse", "fine")
_STAGE_CLASSES = {"semantic": "SemanticStage", "coarse": "CoarseStage", "fine": "FineStage"}
_RUN_MARKER = "run.json"
_CACHE_NAME = "audiolm_tokens"


class _CommandError(Exception):
    """A user error: printed as ``error: ...`` with exit status 2."""


# ------------------------------------------------------------------------------ parsers
def _per_stage(kind: type):
    """An argparse type for one value, or three comma-separated ones (semantic, coarse,
    fine); ``none`` is None (top-k)."""

    def parse(text: str):
        def one(part: str):
            part = part.strip()
            if kind is int and part.lower() == "none":
                return None
            return kind(part)

        try:
            values = [one(part) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected one {kind.__name__} or three comma-separated ones (semantic, "
                f"coarse, fine), got {text!r}") from None
        if len(values) not in (1, 3):
            raise argparse.ArgumentTypeError(f"expected 1 or 3 values, got {len(values)}")
        return values[0] if len(values) == 1 else values

    return parse


def _common(parser: argparse.ArgumentParser, *, training: bool = True) -> None:
    if training:
        from .presets import PRESETS  # noqa: PLC0415 - light: no model code runs

        parser.add_argument("--preset", choices=list(PRESETS), default="tiny",
                            help="model and training sizes (default tiny: seconds on a CPU; "
                                 "small: hours on one GPU; paper: AudioLM's sizes)")
        parser.add_argument("--config", type=Path, default=None, metavar="FILE.json",
                            help="a JSON object of preset keys to change, e.g. "
                                 "'{\"codec\": {\"num_levels\": 8}}'")
        parser.add_argument("--checkpoint-dir", type=Path, default=None, metavar="DIR",
                            help="resumable checkpoints (default: OUT_STEM.checkpoints next "
                                 "to --out)")
        resume = parser.add_mutually_exclusive_group()
        resume.add_argument("--resume", action="store_true",
                            help="continue the run whose checkpoint is in the checkpoint dir")
        resume.add_argument("--restart", action="store_true",
                            help="delete an earlier run's checkpoint and start over")
    parser.add_argument("--seed", type=int, default=0, help="seeds crops, init and sampling")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, "
                                                         "cuda, cuda:1, ...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    audiolm = commands.add_parser(
        "audiolm", help="train AudioLM on a folder of audio; continue a prompt",
        description="AudioLM (Borsos et al., 2022) trained from scratch on your audio: "
                    "train-codec and train-semantic first, then train-stage semantic, coarse "
                    "and fine, then continue.")
    actions = audiolm.add_subparsers(dest="action", metavar="ACTION", required=True)

    codec = actions.add_parser(
        "train-codec", help="train the SoundStream codec (acoustic tokens)",
        description="Train a SoundStream codec on random crops of DATA_DIR (mel "
                    "reconstruction + RVQ commitment, and unless --no-adversarial, hinge "
                    "adversarial + feature matching). Runs under torchrun too (one "
                    "process per device, --batch-size crops each, gradients averaged; rank 0 "
                    "writes --out and the checkpoints).")
    codec.add_argument("data", type=Path, metavar="DATA_DIR",
                       help="a folder of audio files (.wav, .flac, .ogg; any lengths)")
    codec.add_argument("--out", type=Path, required=True, metavar="CODEC.pt")
    codec.add_argument("--steps", type=int, default=None, help="default: the preset's")
    codec.add_argument("--batch-size", type=int, default=None)
    codec.add_argument("--adversarial", action=argparse.BooleanOptionalAction, default=None,
                       help="use the discriminators (default: the preset's; tiny: off)")
    _common(codec)

    semantic = actions.add_parser(
        "train-semantic", help="fit the k-means semantic tokenizer",
        description="Fit k-means semantic tokens on standardized frame features of random "
                    "crops of DATA_DIR. With --features ssl, a masked-prediction encoder "
                    "(HuBERT-style) is trained first (torchrun-able) and one of its layers is "
                    "clustered.")
    semantic.add_argument("data", type=Path, metavar="DATA_DIR")
    semantic.add_argument("--out", type=Path, required=True, metavar="TOKENIZER.pt")
    from .presets import FEATURE_CHOICES  # noqa: PLC0415 - light: no model code runs

    semantic.add_argument("--features", choices=FEATURE_CHOICES, default=None,
                          help="default: the preset's (tiny: mfcc); chroma: pitch classes, "
                               "for music; mfcc_chroma: both side by side")
    semantic.add_argument("--clusters", type=int, default=None, metavar="K",
                          help="vocabulary size K (AudioLM: 1024)")
    semantic.add_argument("--ssl-steps", type=int, default=None, metavar="N",
                          help="training steps of the masked encoder (--features ssl)")
    semantic.add_argument("--layer", type=int, default=None,
                          help="the encoder layer to cluster (--features ssl)")
    semantic.add_argument("--mean-normalization", action="store_true", default=None,
                          help="subtract each crop's mean MFCC / log-mel frame (CMN) before "
                               "clustering (with ssl: from the encoder's targets), so tokens "
                               "follow content more than voice or instrument")
    _common(semantic)

    stage = actions.add_parser(
        "train-stage", help="train the semantic, coarse or fine transformer",
        description="Tokenize DATA_DIR once with the frozen tokenizer and codec (cached in "
                    "OUT's folder, shared by the stages) and train one stage on random crops "
                    "of the tokens (torchrun-able).")
    stage.add_argument("stage", choices=STAGES)
    stage.add_argument("data", type=Path, metavar="DATA_DIR")
    stage.add_argument("--tokenizer", type=Path, required=True, metavar="TOKENIZER.pt")
    stage.add_argument("--codec", type=Path, required=True, metavar="CODEC.pt")
    stage.add_argument("--out", type=Path, required=True, metavar="STAGE.pt")
    stage.add_argument("--steps", type=int, default=None)
    stage.add_argument("--batch-size", type=int, default=None)
    stage.add_argument("--learning-rate", type=float, default=None)
    stage.add_argument("--crop-seconds", type=float, default=None,
                       help="crop length of the semantic/coarse stage (default: the preset's)")
    stage.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                       help=f"token cache (default: {_CACHE_NAME}/ next to --out)")
    _common(stage)

    continuation = actions.add_parser(
        "continue", help="continue a prompt with the trained models",
        description="Continue PROMPT.wav by --seconds of generated audio: semantic tokens, "
                    "then coarse and fine acoustic tokens, then the codec's decoder.")
    continuation.add_argument("prompt", type=Path, metavar="PROMPT.wav")
    continuation.add_argument("--seconds", type=float, default=4.0,
                              help="length of the continuation (default 4)")
    continuation.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.wav")
    for name in ("tokenizer", "codec", "semantic", "coarse", "fine"):
        continuation.add_argument(f"--{name}", type=Path, required=True,
                                  metavar=f"{name.upper()}.pt")
    continuation.add_argument("--temperature", type=_per_stage(float), default=None,
                              help="one value or semantic,coarse,fine (default: each stage's, "
                                   "AudioLM's 0.6,0.8,0.6)")
    continuation.add_argument("--top-k", type=_per_stage(int), default=None,
                              help="one value or semantic,coarse,fine ('none': no limit)")
    continuation.add_argument("--include-prompt", action="store_true",
                              help="write the prompt followed by the continuation")
    continuation.add_argument("--resample", action="store_true",
                              help="resample a prompt at another rate (else an error)")
    _common(continuation, training=False)


# ------------------------------------------------------------------------------ helpers
def _fail(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _say(message: str) -> None:
    if _rank() == 0:
        print(message, flush=True)


def _positive(name: str, value: Any) -> Any:
    if value is not None and not value > 0:
        raise _CommandError(f"{name} must be > 0, got {value}")
    return value


def _preset(args: argparse.Namespace):
    from .presets import load_preset

    return load_preset(args.preset, args.config)


def _checkpoint_dir(args: argparse.Namespace, model: dict[str, Any]) -> Path:
    """The run's checkpoint folder, checked against ``--resume`` / ``--restart``: ``model``
    (what shapes the weights) must equal the one stored by the run being resumed."""
    out: Path = args.out
    directory = args.checkpoint_dir or out.parent / f"{out.stem}.checkpoints"
    marker = directory / _RUN_MARKER
    checkpoints = sorted(directory.rglob("last.pt")) if directory.is_dir() else []
    if checkpoints and args.restart:
        if not marker.is_file():
            raise _CommandError(f"--restart: '{directory}' was not written by lutece audiolm "
                                f"(no {_RUN_MARKER}); delete it yourself")
        if _rank() == 0:
            shutil.rmtree(directory)
        checkpoints = []
    if checkpoints and not args.resume:
        raise _CommandError(
            f"'{directory}' holds the checkpoint of an earlier run ({checkpoints[0]}); pass "
            f"--resume to continue it or --restart to start over")
    stored = json.loads(marker.read_text()) if checkpoints and marker.is_file() else None
    model = json.loads(json.dumps(model))
    different = _differences(stored, model) if stored is not None else []
    if different:
        raise _CommandError(
            f"--resume: '{directory}' holds a run of another configuration (differs in: "
            f"{', '.join(different)}); use the same --preset/--config/inputs, or --restart")
    if _rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = marker.with_name(f".{marker.name}.tmp")
        temporary.write_text(json.dumps(model, indent=2))
        os.replace(temporary, marker)
    if args.resume and checkpoints:
        _say(f"resuming from {checkpoints[0]}")
    return directory


def _differences(stored: Any, given: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON values differ."""
    if isinstance(stored, dict) and isinstance(given, dict):
        return [difference for key in sorted(set(stored) | set(given))
                for difference in _differences(stored.get(key), given.get(key),
                                               f"{prefix}{key}.")]
    return [] if stored == given else [prefix.rstrip(".")]


def _repeats(slots: int, examples: int, cap: int = 10_000_000) -> int:
    """Epoch copies so that a run of ``examples`` crops sees fresh crops (at most ``cap``
    items per epoch)."""
    return max(1, min(math.ceil(examples / max(1, slots)), max(1, cap // max(1, slots))))


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _kind_of(payload: Any) -> tuple[str, str]:
    """What a lutece checkpoint holds, in words, and the option it belongs to ("" if none)."""
    from .codec import CHECKPOINT_FORMAT
    from .data import TOKEN_STORE_FORMAT
    from .semantic import TOKENIZER_FORMAT
    from .transformers import STAGE_FORMAT

    if not isinstance(payload, dict):
        return f"a {type(payload).__name__}", ""
    kind = payload.get("format")
    if kind == CHECKPOINT_FORMAT:
        return "a SoundStream codec", "--codec"
    if kind == TOKENIZER_FORMAT:
        return "a KMeansTokenizer", "--tokenizer"
    if kind == STAGE_FORMAT:
        stage = str(payload.get("stage"))
        option = {v: k for k, v in _STAGE_CLASSES.items()}.get(stage)
        return f"a {stage}", f"--{option}" if option else ""
    if kind == TOKEN_STORE_FORMAT:
        return "a token cache of train-stage", ""
    if {"model", "optimizer", "step"} <= set(payload):
        return ("a resumable training checkpoint (the state of a run, not its output: pass "
                "the file written to --out)"), ""
    return "no lutece model", ""


def _read(option: str, path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise _CommandError(f"{option}: no such file: '{path}'")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - one clear message for any unreadable file
        raise _CommandError(f"{option}: '{path}' is not a lutece checkpoint "
                            f"({type(error).__name__}: {error})") from error
    return payload


def _expect(option: str, path: Path, payload: Any, expected_format: str, what: str,
            stage: str | None = None) -> None:
    ok = isinstance(payload, dict) and payload.get("format") == expected_format \
        and (stage is None or payload.get("stage") == stage)
    if not ok:
        held, belongs = _kind_of(payload)
        hint = f"; pass it as {belongs}" if belongs and belongs != option else ""
        raise _CommandError(f"{option}: '{path}' holds {held}, not {what}{hint}")


def _load_tokenizer(path: Path):
    from .semantic import TOKENIZER_FORMAT, KMeansTokenizer

    payload = _read("--tokenizer", path)
    _expect("--tokenizer", path, payload, TOKENIZER_FORMAT, "a KMeansTokenizer")
    try:
        return KMeansTokenizer.load(path)
    except (ValueError, TypeError, RuntimeError) as error:
        raise _CommandError(f"--tokenizer: {error}") from error


def _load_codec(path: Path):
    from .codec import CHECKPOINT_FORMAT, CodecConfig, SoundStream

    payload = _read("--codec", path)
    _expect("--codec", path, payload, CHECKPOINT_FORMAT, "a SoundStream codec")
    try:
        codec = SoundStream(CodecConfig.from_dict(payload["config"]))
        codec.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        raise _CommandError(f"--codec: '{path}' does not load as a codec ({error})") from error
    return codec.eval()


def _load_stage(name: str, path: Path) -> tuple[Any, dict[str, Any]]:
    from . import transformers
    from .transformers import STAGE_FORMAT

    option, class_name = f"--{name}", _STAGE_CLASSES[name]
    payload = _read(option, path)
    _expect(option, path, payload, STAGE_FORMAT, f"a {class_name}", stage=class_name)
    cls = getattr(transformers, class_name)
    try:
        stage = cls(cls.config_class(**payload["config"]))
        stage.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        raise _CommandError(f"{option}: '{path}' does not load as a {class_name} ({error})") \
            from error
    return stage.eval(), payload


def _check_pair(tokenizer: Any, codec: Any, tokenizer_path: Path, codec_path: Path) -> int:
    """Frames of the codec per semantic frame; same sample rate, aligned frame rates."""
    from .semantic import check_rate_alignment

    if tokenizer.sample_rate != codec.config.sample_rate:
        raise _CommandError(
            f"the tokenizer '{tokenizer_path}' reads {tokenizer.sample_rate} Hz audio but the "
            f"codec '{codec_path}' {codec.config.sample_rate} Hz; train both with the same "
            f"preset (sample rate)")
    try:
        return check_rate_alignment(tokenizer.frame_rate, codec.frame_rate)
    except ValueError as error:
        raise _CommandError(f"the tokenizer '{tokenizer_path}' and the codec '{codec_path}' "
                            f"do not align: {error}") from error


def _stage_config(preset: Any, stage: str, tokenizer: Any, codec: Any, ratio: int):
    """The preset's stage config with its vocabulary fields set from the tokenizer/codec."""
    codec_cfg = codec.config
    if stage == "semantic":
        return dataclasses.replace(preset.semantic, vocab_size=tokenizer.vocab_size)
    coarse_levels = preset.coarse.coarse_levels
    if coarse_levels >= codec_cfg.num_levels:
        raise _CommandError(f"the preset's coarse_levels={coarse_levels} must be below the "
                            f"codec's num_levels={codec_cfg.num_levels} (set coarse."
                            f"coarse_levels and fine.coarse_levels with --config)")
    if stage == "coarse":
        return dataclasses.replace(preset.coarse, semantic_vocab_size=tokenizer.vocab_size,
                                   codebook_size=codec_cfg.codebook_size,
                                   frames_per_semantic=ratio)
    return dataclasses.replace(preset.fine, codebook_size=codec_cfg.codebook_size,
                               num_levels=codec_cfg.num_levels, coarse_levels=coarse_levels)


# ------------------------------------------------------------------------------ actions
def _train_codec(args: argparse.Namespace) -> int:
    preset = _preset(args)
    import torch.distributed as dist

    from ...train import distributed_context, resolve_device, seed_everything
    from .codec import SoundStream, train_codec
    from .data import AudioCropDataset

    base = preset.codec_training
    steps = _positive("--steps", args.steps) or base.steps
    batch = _positive("--batch-size", args.batch_size) or base.batch_size
    adversarial = base.adversarial if args.adversarial is None else args.adversarial
    model = {"command": "train-codec", "codec": preset.codec.to_dict(),
             "adversarial": adversarial, "seed": args.seed}
    world_size = _world_size()
    initialized_here = distributed_context(resolve_device(args.device)).initialized_here
    try:
        if world_size > 1:
            # Rank 0 checks (with --restart, clears) the checkpoint folder and the others
            # take its verdict: none looks at the folder while rank 0 changes it.
            verdict: list[Any] = [None]
            if _rank() == 0:
                try:
                    verdict = [("ok", str(_checkpoint_dir(args, model)))]
                except (_CommandError, OSError, ValueError) as error:
                    verdict = [("error", str(error))]
            dist.broadcast_object_list(verdict, src=0)
            outcome, value = verdict[0]
            if outcome == "error":
                raise _CommandError(value)
            directory = Path(value)
        else:
            directory = _checkpoint_dir(args, model)
        config = dataclasses.replace(base, steps=steps, batch_size=batch,
                                     adversarial=adversarial, seed=args.seed,
                                     device=args.device, checkpoint_dir=str(directory),
                                     progress=not args.no_progress)
        dataset = AudioCropDataset(args.data, sample_rate=preset.codec.sample_rate,
                                   crop_samples=config.segment_samples, seed=args.seed)
        dataset.repeats = _repeats(dataset.num_slots, steps * batch * world_size)
        seed_everything(args.seed)
        codec = SoundStream(preset.codec)
        rate = preset.codec.sample_rate
        processes = f" per process x {world_size} processes" if world_size > 1 else ""
        _say(f"train-codec: {len(dataset.eligible)} file(s), {dataset.total_seconds:.1f} s "
             f"of audio in '{args.data}' at {rate} Hz; preset {preset.name}: "
             f"{codec.frame_rate:g} Hz x {preset.codec.num_levels} levels x "
             f"{preset.codec.codebook_size} codes ({codec.bitrate():g} bit/s); {steps} steps "
             f"of {batch} x {config.segment_samples / rate:g} s crops{processes}, "
             f"adversarial {'on' if adversarial else 'off'}; checkpoints in '{directory}'")
        result = train_codec(codec, dataset, config)
    finally:
        if initialized_here and dist.is_initialized():
            dist.destroy_process_group()
    if _rank() == 0:
        result.codec.cpu().save(args.out, preset=preset.name, steps=result.steps,
                                train_config=dataclasses.asdict(config))
    last = result.history[-1] if result.history else {}
    term = next((name for name in ("mel", "magnitude") if name in last), None)
    loss = f", last {term} loss {last[term]:.4g}" if term else ""
    _say(f"codec ({result.steps} steps{loss}) -> {args.out}")
    return 0


def _train_semantic(args: argparse.Namespace) -> int:
    preset = _preset(args)
    import torch

    from ...train import resolve_device, seed_everything
    from .data import AudioCropDataset
    from .semantic import KMeansTokenizer, MaskedFeatureEncoder, train_masked_encoder

    recipe = dataclasses.replace(
        preset.tokenizer,
        features=args.features or preset.tokenizer.features,
        num_clusters=_positive("--clusters", args.clusters) or preset.tokenizer.num_clusters,
        ssl_steps=_positive("--ssl-steps", args.ssl_steps) or preset.tokenizer.ssl_steps,
        ssl_layer=preset.tokenizer.ssl_layer if args.layer is None else args.layer,
        mean_normalization=bool(args.mean_normalization
                                or preset.tokenizer.mean_normalization))
    rate = preset.codec.sample_rate
    hop = round(rate / recipe.frame_rate)
    crop = max(1, round(recipe.crop_seconds * rate / hop)) * hop
    # What the encoder's weights depend on (K, the layer and the k-means are refit after).
    model = {"command": "train-semantic", "sample_rate": rate, "seed": args.seed,
             **{name: getattr(recipe, name) for name in (
                 "frame_rate", "crop_seconds", "max_crops", "max_frames", "ssl_encoder",
                 "ssl_targets", "ssl_batch_size", "ssl_learning_rate", "mean_normalization")}}
    directory = _checkpoint_dir(args, model) if recipe.features == "ssl" else None
    dataset = AudioCropDataset(args.data, sample_rate=rate, crop_samples=crop, seed=args.seed)
    count = recipe.max_crops or dataset.num_slots
    dataset.repeats = _repeats(dataset.num_slots, count)
    _say(f"train-semantic: {len(dataset.eligible)} file(s), {dataset.total_seconds:.1f} s of "
         f"audio in '{args.data}'; {count} crop(s) of {crop / rate:g} s; {recipe.features} "
         f"features, K = {recipe.num_clusters} at {recipe.frame_rate:g} Hz")
    waves = torch.stack([dataset[index] for index in range(count)])
    device = resolve_device(args.device)
    options = {"sample_rate": rate, "frame_rate": recipe.frame_rate,
               "max_iterations": recipe.kmeans_iterations}
    feature_options = {"mean_normalization": True} if recipe.mean_normalization else None
    if recipe.features == "ssl":
        targets = KMeansTokenizer("mfcc", recipe.ssl_targets, feature_options=feature_options,
                                  **options)
        targets.fit(waves, max_frames=recipe.max_frames, seed=args.seed)
        seed_everything(args.seed)
        try:
            encoder = MaskedFeatureEncoder(**{**recipe.ssl_encoder,
                                              "frame_rate": recipe.frame_rate,
                                              "sample_rate": rate,
                                              "num_targets": recipe.ssl_targets})
        except TypeError as error:
            raise _CommandError(f"tokenizer.ssl_encoder: {error}") from error
        _say(f"training the masked encoder ({recipe.ssl_steps} steps; checkpoints in "
             f"'{directory}')")
        result = train_masked_encoder(
            encoder, waves, targets, steps=recipe.ssl_steps,
            batch_size=min(recipe.ssl_batch_size, count), lr=recipe.ssl_learning_rate,
            seed=args.seed, device=args.device, checkpoint_dir=str(directory),
            progress=not args.no_progress)
        tokenizer = KMeansTokenizer(result.model.eval(), recipe.num_clusters,
                                    layer=recipe.ssl_layer, **options)
    else:
        tokenizer = KMeansTokenizer(recipe.features, recipe.num_clusters,
                                    feature_options=feature_options, **options)
    tokenizer.to(device)
    tokenizer.fit(waves, max_frames=recipe.max_frames, seed=args.seed)
    if _rank() == 0:
        tokenizer.cpu().save(args.out)
    _say(f"semantic tokenizer ({recipe.features}, K = {recipe.num_clusters}, "
         f"{recipe.frame_rate:g} tokens/s, inertia {tokenizer.inertia_:.4g}) -> {args.out}")
    return 0


def _schedule(warmup: int, steps: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return factor


def _train_stage(args: argparse.Namespace) -> int:
    preset = _preset(args)
    import torch
    import torch.distributed as dist

    from ...train import TrainConfig, distributed_context, resolve_device, seed_everything, train
    from . import transformers
    from .data import (
        CoarseTokenCrops,
        FineTokenCrops,
        SemanticTokenCrops,
        find_audio_files,
        model_fingerprint,
        precompute_tokens,
    )

    stage_name = args.stage
    tokenizer = _load_tokenizer(args.tokenizer)
    codec = _load_codec(args.codec)
    ratio = _check_pair(tokenizer, codec, args.tokenizer, args.codec)
    config = _stage_config(preset, stage_name, tokenizer, codec, ratio)
    recipe = getattr(preset, f"{stage_name}_training")
    recipe = dataclasses.replace(
        recipe, steps=_positive("--steps", args.steps) or recipe.steps,
        batch_size=_positive("--batch-size", args.batch_size) or recipe.batch_size,
        learning_rate=_positive("--learning-rate", args.learning_rate) or recipe.learning_rate,
        crop_seconds=_positive("--crop-seconds", args.crop_seconds) or recipe.crop_seconds)
    fingerprints = {"tokenizer_fingerprint": model_fingerprint(tokenizer),
                    "codec_fingerprint": model_fingerprint(codec)}
    directory = _checkpoint_dir(args, {"command": f"train-stage {stage_name}",
                                       "config": dataclasses.asdict(config),
                                       "seed": args.seed, "batch_size": recipe.batch_size,
                                       **fingerprints})
    files = find_audio_files(args.data)

    # Tokens: computed once (rank 0 under torchrun, the others wait), shared by the stages.
    cache_dir = args.cache_dir or args.out.parent / _CACHE_NAME
    key = hashlib.sha256(repr((str(args.data.resolve()), *fingerprints.values()))
                         .encode()).hexdigest()[:12]
    cache = cache_dir / f"tokens-{key}.pt"
    device = resolve_device(args.device)
    # a long timeout: the other ranks wait while rank 0 computes the tokens of the folder
    context = distributed_context(device, timeout=datetime.timedelta(hours=12))
    initialized_here = context.initialized_here
    try:
        tokenizer.to(device)
        codec.to(device)
        if _rank() == 0:
            _say(f"train-stage {stage_name}: tokens of {len(files)} file(s) in "
                 f"'{args.data}' -> '{cache}'")
            store = precompute_tokens(files, tokenizer, codec, path=cache,
                                      progress=not args.no_progress)
        if initialized_here:
            dist.barrier()
        if _rank() != 0:
            store = precompute_tokens(files, tokenizer, codec, path=cache, progress=False)
        tokenizer.cpu()
        codec.cpu()

        semantic_frames = max(1, round(recipe.crop_seconds * store.semantic_rate))
        crops = {"seed": args.seed}
        if stage_name == "semantic":
            if 1 + semantic_frames > config.transformer.max_length:
                raise _CommandError(
                    f"{recipe.crop_seconds:g} s crops make {1 + semantic_frames} semantic "
                    f"tokens, more than semantic.transformer.max_length="
                    f"{config.transformer.max_length}; use a shorter --crop-seconds")
            dataset = SemanticTokenCrops(store, frames=semantic_frames, **crops)
            what = f"{semantic_frames} semantic tokens ({recipe.crop_seconds:g} s)"
        elif stage_name == "coarse":
            length = config.sequence_length(semantic_frames)
            if length > config.transformer.max_length:
                raise _CommandError(
                    f"{recipe.crop_seconds:g} s crops make coarse sequences of {length} "
                    f"tokens, more than coarse.transformer.max_length="
                    f"{config.transformer.max_length}; use a shorter --crop-seconds")
            dataset = CoarseTokenCrops(store, semantic_frames=semantic_frames,
                                       levels=config.coarse_levels, **crops)
            what = (f"{semantic_frames} semantic + {ratio * semantic_frames} x "
                    f"{config.coarse_levels} coarse tokens ({recipe.crop_seconds:g} s)")
        else:
            dataset = FineTokenCrops(store, chunk_frames=config.chunk_frames, **crops)
            what = (f"chunks of {config.chunk_frames} frames x {config.num_levels} levels "
                    f"({config.chunk_frames / store.acoustic_rate:g} s)")
        dataset.repeats = _repeats(dataset.num_slots,
                                   recipe.steps * recipe.batch_size * _world_size())
        seed_everything(args.seed)
        stage = getattr(transformers, _STAGE_CLASSES[stage_name])(config)
        parameters = sum(p.numel() for p in stage.parameters())
        _say(f"train-stage {stage_name}: {len(dataset.eligible)} file(s), "
             f"{store.seconds:.1f} s of tokens; {parameters / 1e6:.3g}M parameters; "
             f"{recipe.steps} steps of {recipe.batch_size} crops of {what}; checkpoints in "
             f"'{directory}'")
        # AdamW with (0.9, 0.98) betas, as train_masked_encoder (our choice; the paper's
        # optimizer is not in the notes).
        optimizer = torch.optim.AdamW(stage.parameters(), lr=recipe.learning_rate,
                                      betas=(0.9, 0.98), weight_decay=recipe.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _schedule(recipe.warmup_steps, recipe.steps))
        train_config = TrainConfig(max_steps=recipe.steps, batch_size=recipe.batch_size,
                                   seed=args.seed, device=args.device,
                                   checkpoint_dir=str(directory),
                                   checkpoint_every=recipe.checkpoint_every,
                                   grad_clip=recipe.grad_clip, progress=not args.no_progress)
        from .transformers import stage_loss

        result = train(stage, optimizer, dataset, stage_loss, train_config,
                       scheduler=scheduler)
    finally:
        if initialized_here and dist.is_initialized():
            dist.destroy_process_group()
    last = result.history[-1]["loss"] if result.history else float("nan")
    if _rank() == 0:
        result.model.cpu().save(args.out, preset=preset.name, steps=result.steps,
                                loss=last, recipe=dataclasses.asdict(recipe),
                                **fingerprints)
    _say(f"{_STAGE_CLASSES[stage_name]} ({result.steps} steps, last loss {last:.4g} nats) "
         f"-> {args.out}")
    return 0


def _continue(args: argparse.Namespace) -> int:
    import torch

    from ...train import resolve_device
    from ..io import AudioFileError, info, load, save
    from .audiolm import AudioLM
    from .data import model_fingerprint

    if not args.seconds > 0 or not math.isfinite(args.seconds):
        raise _CommandError(f"--seconds must be a positive number, got {args.seconds}")
    if args.out.suffix.lower() not in (".wav", ".flac", ".ogg"):
        raise _CommandError(f"-o/--out must end in .wav, .flac or .ogg, got '{args.out}'")
    if not args.prompt.is_file():
        raise _CommandError(f"no such prompt file: '{args.prompt}'")
    tokenizer = _load_tokenizer(args.tokenizer)
    codec = _load_codec(args.codec)
    _check_pair(tokenizer, codec, args.tokenizer, args.codec)
    stages = {}
    fingerprints = {"tokenizer_fingerprint": (model_fingerprint(tokenizer), "--tokenizer",
                                              args.tokenizer),
                    "codec_fingerprint": (model_fingerprint(codec), "--codec", args.codec)}
    for name in STAGES:
        path = getattr(args, name)
        stages[name], payload = _load_stage(name, path)
        for key, (value, option, source) in fingerprints.items():
            stored = payload.get(key)
            if stored is not None and stored != value:
                raise _CommandError(
                    f"--{name}: '{path}' was trained on the tokens of another "
                    f"{option.lstrip('-')} than '{source}' (weights fingerprint {stored} vs "
                    f"{value}); pass the {option} it was trained with")
    try:
        model = AudioLM(tokenizer, codec, stages["semantic"], stages["coarse"],
                        stages["fine"])
    except (TypeError, ValueError) as error:
        raise _CommandError(f"the checkpoints do not fit together: {error}") from error
    rate = model.sample_rate
    try:
        header = info(args.prompt)
        if header.sample_rate != rate and not args.resample:
            raise _CommandError(
                f"the prompt '{args.prompt}' is at {header.sample_rate} Hz but the models read "
                f"{rate} Hz; pass --resample or resample it first")
        wave, _ = load(args.prompt, rate)
    except AudioFileError as error:
        raise _CommandError(str(error)) from error
    if wave.shape[-1] < model.semantic_hop:
        raise _CommandError(
            f"the prompt '{args.prompt}' lasts {wave.shape[-1] / rate:g} s ({wave.shape[-1]} "
            f"samples), shorter than one semantic frame ({model.semantic_hop} samples = "
            f"{1000 * model.semantic_hop / rate:g} ms), the shortest prompt the tokenizer "
            f"and codec can read")
    device = resolve_device(args.device)
    for part in (tokenizer, codec, *stages.values()):
        part.to(device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    try:
        output = model.continue_audio(wave[0], args.seconds, sample_rate=rate,
                                      include_prompt=args.include_prompt,
                                      temperature=args.temperature, top_k=args.top_k,
                                      generator=generator)
    except ValueError as error:
        raise _CommandError(f"{args.prompt}: {error}") from error
    output = output.detach().cpu().float()
    if not bool(torch.isfinite(output).all()):
        return _fail("the generated audio contains NaN or inf (a model has diverged); "
                     "nothing was written", status=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save(args.out, output.clamp(-1.0, 1.0), rate)
    prompt_seconds = wave.shape[-1] / rate
    print(f"continued '{args.prompt}' ({prompt_seconds:.2f} s) by {args.seconds:g} s"
          f"{' (prompt included)' if args.include_prompt else ''}: "
          f"{output.shape[-1] / rate:.2f} s at {rate} Hz -> {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``lutece audiolm ACTION``; 0 on success, 2 on a user error, 1 on divergence."""
    actions = {"train-codec": _train_codec, "train-semantic": _train_semantic,
               "train-stage": _train_stage, "continue": _continue}
    try:
        return actions[args.action](args)
    except _CommandError as error:
        return _fail(str(error))
    except FloatingPointError as error:
        return _fail(str(error), status=1)
    except KeyboardInterrupt:
        if args.action == "continue":
            return _fail("interrupted; nothing was written", status=130)
        return _fail("interrupted; the last checkpoint is kept: run the same command with "
                     "--resume to continue", status=130)
    except (OSError, ValueError) as error:
        return _fail(str(error))
