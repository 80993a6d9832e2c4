"""Named sizes for training AudioLM from scratch: the codec, the semantic tokenizer, the three
stages and how each is trained, as one JSON-serializable :class:`AudioLMPreset`.

- ``"tiny"``: seconds on a CPU; for tests and for checking that a folder of audio goes
  through the whole recipe. It learns nothing useful.
- ``"small"``: one GPU (or a patient CPU) for hours: a 16 kHz / 50 Hz SoundStream with
  8 x 256 codes, 25 Hz k-means semantic tokens with K = 256 and 6-layer, 256-wide stages
  (audiolm-pytorch's README examples are 6 layers deep, 512-1024 wide, with 3 coarse
  quantizers; ours are narrower).
- ``"paper"``: AudioLM's sizes (Borsos et al., 2022, arXiv 2209.03143, per the research notes
  ``audiolm_dive.md`` Sec. 1): a 16 kHz SoundStream with strides (2, 4, 5, 8) -> 50 Hz and
  ``Q = 12`` levels of ``N = 1024`` codes (6 kbit/s), ``Q' = 4`` coarse levels; 25 Hz
  semantic tokens, k-means with ``K = 1024``; three 12-layer, 16-head, ``d = 1024``, FFN 4096,
  dropout 0.1 decoder-only stages trained on 30 s / 10 s / 3 s crops with batch 256 for 1M
  steps each; sampling temperatures 0.6 / 0.8 / 0.6. The semantic features are our masked
  encoder (:class:`~lutece.audio.lm.semantic.MaskedFeatureEncoder`) at HuBERT Base's size
  (12 layers, 768 wide; Hsu et al., 2021), a stand-in for the paper's w2v-BERT XL (0.6B
  parameters, layer 7 of its MLM module), which cannot be downloaded here. Values the notes
  do not give (learning rates, warm-up, codec steps and crop length) are marked as our choices.

A preset is plain configuration: ``preset.to_dict()`` / :meth:`AudioLMPreset.from_dict`
round-trip through JSON, and :func:`load_preset` overlays a JSON file (any subset of the keys
of ``to_dict()``, nested) on a named preset, so ``lutece audiolm ... --config FILE.json``
changes only what it names. Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._validation import check_int
from .codec import CodecConfig, CodecTrainConfig
from .transformers import (
    CoarseStageConfig,
    FineStageConfig,
    SemanticStageConfig,
    TransformerConfig,
)

__all__ = ["AudioLMPreset", "TokenizerRecipe", "StageRecipe", "PRESETS", "load_preset",
           "preset_names"]

FEATURE_CHOICES = ("mfcc", "log_mel", "chroma", "mfcc_chroma", "ssl")


@dataclass
class TokenizerRecipe:
    """How ``lutece audiolm train-semantic`` builds the semantic tokenizer.

    Attributes:
        features: ``"mfcc"``, ``"log_mel"`` (k-means on standardized frame features, HuBERT's
            first iteration), ``"chroma"`` (pitch-class frames: tokens that follow the notes,
            for music), ``"mfcc_chroma"`` (both side by side) or ``"ssl"`` (k-means on a
            layer of a
            :class:`~lutece.audio.lm.semantic.MaskedFeatureEncoder` trained first, by masked
            prediction of MFCC k-means ids).
        num_clusters: ``K`` (1024 in AudioLM).
        frame_rate: tokens per second (25.0 in AudioLM).
        crop_seconds: length of the random crops the k-means (and the encoder) see.
        max_crops: crops drawn from the folder for fitting (None: about one pass over it).
        max_frames: k-means on at most this many frames (None: all).
        kmeans_iterations: Lloyd iterations.
        ssl_encoder: keyword arguments of ``MaskedFeatureEncoder`` (``frame_rate`` and
            ``sample_rate`` come from the preset).
        ssl_layer: the encoder layer clustered (AudioLM: layer 7 of w2v-BERT's MLM module).
        ssl_targets: clusters of the MFCC k-means whose ids the encoder predicts (100,
            HuBERT's first iteration).
        ssl_steps, ssl_batch_size, ssl_learning_rate: the encoder's training run (peak
            5e-4: :func:`~lutece.audio.lm.semantic.train_masked_encoder`'s default).
        mean_normalization: per-clip mean normalization (CMN) of the MFCC / log-mel
            frames that are clustered (``"mfcc"``, ``"log_mel"``) or whose ids the encoder
            predicts (``"ssl"``): tokens that follow the content rather than the voice or
            instrument's average spectrum (False).
    """

    features: str = "mfcc"
    num_clusters: int = 1024
    frame_rate: float = 25.0
    crop_seconds: float = 4.0
    max_crops: int | None = None
    max_frames: int | None = 200_000
    kmeans_iterations: int = 100
    ssl_encoder: dict[str, Any] = field(default_factory=dict)
    ssl_layer: int = 3
    ssl_targets: int = 100
    ssl_steps: int = 1000
    ssl_batch_size: int = 8
    ssl_learning_rate: float = 5e-4
    mean_normalization: bool = False

    def __post_init__(self) -> None:
        fn = "TokenizerRecipe"
        if self.features not in FEATURE_CHOICES:
            raise ValueError(f"{fn}: features must be one of {FEATURE_CHOICES}, "
                             f"got {self.features!r}")
        for name in ("num_clusters", "kmeans_iterations", "ssl_targets", "ssl_steps",
                     "ssl_batch_size"):
            check_int(fn, name, getattr(self, name))
        for name in ("max_crops", "max_frames"):
            if getattr(self, name) is not None:
                check_int(fn, name, getattr(self, name))
        for name in ("frame_rate", "crop_seconds", "ssl_learning_rate"):
            _check_positive(fn, name, getattr(self, name))
        if isinstance(self.ssl_layer, bool) or not isinstance(self.ssl_layer, int) \
                or self.ssl_layer < 0:
            raise ValueError(f"{fn}: ssl_layer must be an int >= 0, got {self.ssl_layer!r}")
        self.ssl_encoder = dict(self.ssl_encoder)
        if not isinstance(self.mean_normalization, bool):
            raise ValueError(f"{fn}: mean_normalization must be true or false, got "
                             f"{self.mean_normalization!r}")
        if self.mean_normalization and self.features == "chroma":
            raise ValueError(f"{fn}: mean_normalization applies to MFCC / log-mel frames, not "
                             f"to chroma (use features 'mfcc_chroma' to normalize its MFCCs)")


@dataclass
class StageRecipe:
    """How ``lutece audiolm train-stage`` trains one stage (AdamW, linear warm-up then
    linear decay to 0, as :func:`~lutece.audio.lm.semantic.train_masked_encoder`).

    Attributes:
        steps: optimizer steps (AudioLM: 1M per stage).
        batch_size: crops per step and per process (AudioLM: 256 over 16 TPUv4).
        learning_rate: peak (our choice; the notes give none).
        warmup_steps: linear warm-up (our choice).
        weight_decay, grad_clip: of AdamW and the global gradient norm (our choices).
        crop_seconds: the crop length: semantic tokens for the semantic stage (AudioLM: 30 s),
            semantic + coarse tokens for the coarse stage (10 s); the fine stage trains on
            chunks of its config's ``chunk_frames`` (3 s) and ignores it.
        checkpoint_every: steps between resumable checkpoints.
    """

    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 3e-4
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    crop_seconds: float = 10.0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        fn = "StageRecipe"
        for name in ("steps", "batch_size", "checkpoint_every"):
            check_int(fn, name, getattr(self, name))
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) \
                or self.warmup_steps < 0:
            raise ValueError(f"{fn}: warmup_steps must be an int >= 0, "
                             f"got {self.warmup_steps!r}")
        for name in ("learning_rate", "crop_seconds"):
            _check_positive(fn, name, getattr(self, name))
        if self.grad_clip is not None:
            _check_positive(fn, "grad_clip", self.grad_clip)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"{fn}: weight_decay must be >= 0, got {self.weight_decay!r}")


def _check_positive(fn: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{fn}: {name} must be a positive number, got {value!r}")


_SECTIONS: dict[str, type] = {
    "codec": CodecConfig, "codec_training": CodecTrainConfig, "tokenizer": TokenizerRecipe,
    "semantic": SemanticStageConfig, "coarse": CoarseStageConfig, "fine": FineStageConfig,
    "semantic_training": StageRecipe, "coarse_training": StageRecipe,
    "fine_training": StageRecipe,
}
# Nested dataclass fields that JSON turns into dicts.
_NESTED: dict[str, type] = {"transformer": TransformerConfig}
# Run-specific fields of CodecTrainConfig that the command line sets, not the preset.
_RUN_FIELDS = ("seed", "device", "checkpoint_dir", "progress")


@dataclass
class AudioLMPreset:
    """Every size and training setting of the recipe (see the module doc).

    The stage configs' vocabulary fields (``vocab_size``, ``semantic_vocab_size``,
    ``codebook_size``, ``num_levels``, ``frames_per_semantic``) are overwritten by
    ``train-stage`` from the tokenizer and codec it is given; the preset sets the rest
    (``coarse_levels``, ``chunk_frames``, the transformers, the sampling defaults).
    """

    name: str
    codec: CodecConfig
    codec_training: CodecTrainConfig
    tokenizer: TokenizerRecipe
    semantic: SemanticStageConfig
    coarse: CoarseStageConfig
    fine: FineStageConfig
    semantic_training: StageRecipe
    coarse_training: StageRecipe
    fine_training: StageRecipe

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dicts (tuples become lists)."""
        values = dataclasses.asdict(self)
        for name in _RUN_FIELDS:
            values["codec_training"].pop(name)
        return json.loads(json.dumps(values))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AudioLMPreset:
        """The preset of :meth:`to_dict`'s layout; every section must be present."""
        fn = "AudioLMPreset.from_dict"
        if not isinstance(values, dict):
            raise TypeError(f"{fn}: expected a dict, got {type(values).__name__}")
        known = {"name", *_SECTIONS}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{fn}: unknown section(s) {unknown}; known: {sorted(known)}")
        missing = sorted(known - set(values))
        if missing:
            raise ValueError(f"{fn}: missing section(s) {missing}")
        sections = {}
        for section, kind in _SECTIONS.items():
            sections[section] = _build(f"{fn}: {section}", kind, values[section])
        return cls(name=str(values["name"]), **sections)


def _build(where: str, kind: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a JSON object, got {values!r}")
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    values = {key: (_build(f"{where}.{key}", _NESTED[key], value)
                    if key in _NESTED and isinstance(value, dict) else value)
              for key, value in values.items()}
    try:
        return kind(**values)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from error


def _transformer(dim: int, layers: int, heads: int, max_length: int,
                 dropout: float = 0.1) -> TransformerConfig:
    return TransformerConfig(dim=dim, num_layers=layers, num_heads=heads, dropout=dropout,
                             max_length=max_length)


def _tiny() -> AudioLMPreset:
    # 16 kHz, hop 320 (50 Hz), 4 levels of 16 codes; 25 Hz semantic tokens, K = 16.
    arch = {"dim": 32, "layers": 1, "heads": 2, "dropout": 0.0}
    return AudioLMPreset(
        name="tiny",
        codec=CodecConfig(channels=4, latent_dim=16, num_levels=4, codebook_size=16,
                          kmeans_iterations=5),
        codec_training=CodecTrainConfig(steps=200, batch_size=4, segment_samples=3200,
                                        adversarial=False, discriminator_warmup=50,
                                        mel_scales=(64, 128, 256), n_mels=32,
                                        discriminator_channels=4, checkpoint_every=50),
        tokenizer=TokenizerRecipe(features="mfcc", num_clusters=16, crop_seconds=0.4,
                                  max_crops=64, max_frames=4000, kmeans_iterations=20,
                                  ssl_encoder={"dim": 16, "layers": 1, "heads": 2,
                                               "conv_pos_kernel": 3, "conv_pos_groups": 2,
                                               "dropout": 0.0},
                                  ssl_layer=1, ssl_targets=8, ssl_steps=20,
                                  ssl_batch_size=4),
        # max_length: a 1 s prompt + 4 s continuation at 25 Hz fits (rotary positions: no
        # parameter per position).
        semantic=SemanticStageConfig(vocab_size=16,
                                     transformer=_transformer(max_length=256, **arch)),
        coarse=CoarseStageConfig(semantic_vocab_size=16, codebook_size=16, coarse_levels=2,
                                 transformer=_transformer(max_length=1024, **arch)),
        fine=FineStageConfig(codebook_size=16, num_levels=4, coarse_levels=2, chunk_frames=10,
                             transformer=_transformer(max_length=64, **arch)),
        semantic_training=StageRecipe(steps=200, batch_size=4, learning_rate=1e-3,
                                      warmup_steps=10, crop_seconds=0.4, checkpoint_every=50),
        coarse_training=StageRecipe(steps=200, batch_size=4, learning_rate=1e-3,
                                    warmup_steps=10, crop_seconds=0.4, checkpoint_every=50),
        fine_training=StageRecipe(steps=200, batch_size=4, learning_rate=1e-3,
                                  warmup_steps=10, checkpoint_every=50),
    )


def _small() -> AudioLMPreset:
    # 16 kHz, hop 320 (50 Hz), 8 x 256 codes (3.2 kbit/s), 3 coarse levels
    # (audiolm-pytorch's README: num_coarse_quantizers=3); K = 256 at 25 Hz.
    arch = {"dim": 256, "layers": 6, "heads": 8, "dropout": 0.1}
    return AudioLMPreset(
        name="small",
        codec=CodecConfig(channels=16, latent_dim=64, num_levels=8, codebook_size=256),
        codec_training=CodecTrainConfig(steps=50_000, batch_size=16, segment_samples=16000,
                                        adversarial=True, discriminator_warmup=5000,
                                        discriminator_channels=16, checkpoint_every=1000,
                                        log_every=50),
        tokenizer=TokenizerRecipe(features="ssl", num_clusters=256, crop_seconds=4.0,
                                  max_crops=5000, max_frames=200_000,
                                  ssl_encoder={"dim": 256, "layers": 6, "heads": 4},
                                  ssl_layer=4, ssl_targets=100, ssl_steps=20_000,
                                  ssl_batch_size=16),
        semantic=SemanticStageConfig(vocab_size=256,
                                     transformer=_transformer(max_length=256, **arch)),
        coarse=CoarseStageConfig(semantic_vocab_size=256, codebook_size=256, coarse_levels=3,
                                 transformer=_transformer(max_length=2048, **arch)),
        fine=FineStageConfig(codebook_size=256, num_levels=8, coarse_levels=3,
                             chunk_frames=100, transformer=_transformer(max_length=1024,
                                                                        **arch)),
        semantic_training=StageRecipe(steps=100_000, batch_size=16, learning_rate=3e-4,
                                      warmup_steps=1000, crop_seconds=10.0,
                                      checkpoint_every=1000),
        coarse_training=StageRecipe(steps=100_000, batch_size=16, learning_rate=3e-4,
                                    warmup_steps=1000, crop_seconds=5.0,
                                    checkpoint_every=1000),
        fine_training=StageRecipe(steps=100_000, batch_size=16, learning_rate=3e-4,
                                  warmup_steps=1000, checkpoint_every=1000),
    )


def _paper() -> AudioLMPreset:
    # AudioLM (Borsos et al. 2022): CodecConfig's and the stage configs' defaults are the
    # paper's sizes; crops 30 s / 10 s / 3 s, batch 256, 1M steps per stage.
    return AudioLMPreset(
        name="paper",
        codec=CodecConfig(),
        # Our choices (the notes give no SoundStream schedule): 1 s crops, batch 32 (1600
        # frames >= 1024 codes for the k-means initialization), 1M steps like the stages.
        codec_training=CodecTrainConfig(steps=1_000_000, batch_size=32,
                                        segment_samples=16000, adversarial=True,
                                        checkpoint_every=5000, log_every=100),
        # Our choices: 4000 crops of 10 s (11 h, held in memory: 2.6 GB at float32) and
        # 400k encoder steps (HuBERT Base's second iteration, as we recall it, unverified).
        tokenizer=TokenizerRecipe(features="ssl", num_clusters=1024, crop_seconds=10.0,
                                  max_crops=4000, max_frames=1_000_000,
                                  ssl_encoder={"dim": 768, "layers": 12, "heads": 12},
                                  ssl_layer=7, ssl_targets=100, ssl_steps=400_000,
                                  ssl_batch_size=32),
        semantic=SemanticStageConfig(),
        coarse=CoarseStageConfig(),
        fine=FineStageConfig(),
        semantic_training=StageRecipe(steps=1_000_000, batch_size=256, learning_rate=3e-4,
                                      warmup_steps=10_000, crop_seconds=30.0,
                                      checkpoint_every=5000),
        coarse_training=StageRecipe(steps=1_000_000, batch_size=256, learning_rate=3e-4,
                                    warmup_steps=10_000, crop_seconds=10.0,
                                    checkpoint_every=5000),
        fine_training=StageRecipe(steps=1_000_000, batch_size=256, learning_rate=3e-4,
                                  warmup_steps=10_000, checkpoint_every=5000),
    )


PRESETS = {"tiny": _tiny, "small": _small, "paper": _paper}
"""Preset name -> a function building a fresh :class:`AudioLMPreset`."""


def preset_names() -> list[str]:
    return list(PRESETS)


def _merge(base: dict[str, Any], override: dict[str, Any], where: str) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if key not in base:
            raise ValueError(f"{where}: unknown key {key!r}; known: {sorted(base)}")
        if isinstance(base[key], dict) and isinstance(value, dict) and key != "ssl_encoder":
            merged[key] = _merge(base[key], value, f"{where}.{key}")
        else:
            merged[key] = value
    return merged


def load_preset(name: str = "tiny", config: str | os.PathLike | dict[str, Any] | None = None
                ) -> AudioLMPreset:
    """The named preset, with ``config`` (a JSON file's path, or its dict) laid over it.

    Args:
        name: ``"tiny"``, ``"small"`` or ``"paper"``.
        config: nested keys of :meth:`AudioLMPreset.to_dict` to change, e.g.
            ``{"codec": {"num_levels": 8}, "coarse_training": {"steps": 500}}``.

    Raises:
        ValueError: an unknown preset name or key, a file that is not JSON, or a value the
            config classes refuse (the message names the key).
        FileNotFoundError: ``config`` names no file.
    """
    fn = "load_preset"
    if name not in PRESETS:
        raise ValueError(f"{fn}: unknown preset {name!r}; choose one of {preset_names()}")
    preset = PRESETS[name]()
    if config is None:
        return preset
    if isinstance(config, dict):
        override, where = config, f"{fn}: config"
    else:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{fn}: no config file '{path}'")
        try:
            override = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{fn}: '{path}' is not valid JSON ({error})") from error
        where = f"{fn}: '{path}'"
        if not isinstance(override, dict):
            raise ValueError(f"{where} must hold a JSON object, got {type(override).__name__}")
    merged = _merge(preset.to_dict(), override, where)
    try:
        return AudioLMPreset.from_dict(merged)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from error
