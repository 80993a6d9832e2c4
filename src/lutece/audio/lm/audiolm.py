"""AudioLM: continue a prompt, or render semantic tokens, by chaining the three stages.

Borsos et al., "AudioLM: a Language Modeling Approach to Audio Generation" (2022,
arXiv 2209.03143), Sec. III-C and Fig. 2. :class:`AudioLM` pairs a semantic tokenizer
(``z``, e.g. 25 Hz k-means ids), a :class:`~lutece.audio.lm.codec.SoundStream` (``y``, e.g.
50 Hz x ``Q`` RVQ levels) and the three stages of :mod:`lutece.audio.lm.transformers`:

- :meth:`AudioLM.continue_audio` (the paper's speech/piano continuation, 3 s and 4 s
  prompts): tokenize the prompt with both tokenizers; sample the semantic continuation
  (stage 1, from the de-duplicated prompt tokens); sample the coarse levels of the
  continuation conditioned on *all* semantic tokens (prompt + continuation) and the prompt's
  coarse codes (stage 2); sample the fine levels of the continuation by chunks from its coarse
  codes only (stage 3); decode prompt codes + continuation codes with the codec and keep the
  continuation (the causal decoder thus carries its state across the boundary).
- :meth:`AudioLM.generate_from_semantic` (the paper's "acoustic generation", Table III): the
  coarse and fine stages and the codec from given semantic tokens only, with no acoustic
  prompt, so the voice/timbre is sampled afresh.

The semantic stage models de-duplicated tokens (Sec. IV), which carry no duration; each
generated token is read as one semantic frame, so a continuation of ``s`` seconds holds
``ceil(s x frame rate)`` generated semantic tokens (the paper does not say how it restores
durations; a stage trained with ``deduplicate=False`` has no such mismatch).

Everything is checked once, here: the tokenizer's and codec's sample rates are equal, the
acoustic frame rate is an integer multiple ``r`` of the semantic one, and every stage's
vocabulary matches the tokenizer or codec it reads (at construction); the prompt's sample
rate, its length (at least one semantic frame, which also covers the codec's hop) and every
token the tokenizers return (at call time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..._validation import check_finite, check_floating, check_int, check_tensor
from .codec import SoundStream
from .semantic import Tokenizer, check_rate_alignment
from .transformers import (
    CoarseStage,
    FineStage,
    SemanticStage,
    _check_ids,
)

__all__ = ["AudioLM"]

_STAGES = ("semantic", "coarse", "fine")


class AudioLM:
    """The three stages chained with their tokenizers (see the module doc).

    Args:
        tokenizer: the semantic tokenizer (``sample_rate``, ``frame_rate``, ``vocab_size``,
            ``tokenize``), frozen.
        codec: the acoustic tokenizer and decoder, frozen.
        semantic_stage: vocabulary = ``tokenizer.vocab_size``.
        coarse_stage: semantic vocabulary, codebook size and ``frames_per_semantic`` match
            the tokenizer and codec; ``coarse_levels <= codec.config.num_levels``.
        fine_stage: codebook size and ``num_levels`` match the codec, ``coarse_levels``
            matches the coarse stage.

    Raises:
        TypeError: a component of the wrong kind, or a tokenizer without the interface.
        ValueError: mismatched sample rates, a non-integer rate ratio or a stage whose
            vocabulary does not match what it is paired with (the message names both).
    """

    def __init__(self, tokenizer: Tokenizer, codec: SoundStream,
                 semantic_stage: SemanticStage, coarse_stage: CoarseStage,
                 fine_stage: FineStage) -> None:
        fn = "AudioLM"
        missing = [name for name in ("sample_rate", "frame_rate", "vocab_size", "tokenize")
                   if not hasattr(tokenizer, name)]
        if missing or not callable(getattr(tokenizer, "tokenize", None)):
            raise TypeError(f"{fn}: tokenizer must have sample_rate, frame_rate, vocab_size "
                            f"and a tokenize(wave) method; {type(tokenizer).__name__} lacks "
                            f"{', '.join(missing) or 'a callable tokenize'}")
        for name, value, kind in (("codec", codec, SoundStream),
                                  ("semantic_stage", semantic_stage, SemanticStage),
                                  ("coarse_stage", coarse_stage, CoarseStage),
                                  ("fine_stage", fine_stage, FineStage)):
            if not isinstance(value, kind):
                raise TypeError(f"{fn}: {name} must be a {kind.__name__}, "
                                f"got {type(value).__name__}")
        codec_cfg = codec.config
        if tokenizer.sample_rate != codec_cfg.sample_rate:
            raise ValueError(f"{fn}: the tokenizer reads {tokenizer.sample_rate} Hz audio but "
                             f"the codec {codec_cfg.sample_rate} Hz; both must read the same "
                             f"waves (resample when training them)")
        self.frames_per_semantic = check_rate_alignment(tokenizer.frame_rate, codec.frame_rate)
        semantic_cfg, coarse_cfg, fine_cfg = (semantic_stage.config, coarse_stage.config,
                                              fine_stage.config)
        pairs = [
            ("semantic_stage.config.vocab_size", semantic_cfg.vocab_size,
             "tokenizer.vocab_size", tokenizer.vocab_size),
            ("coarse_stage.config.semantic_vocab_size", coarse_cfg.semantic_vocab_size,
             "tokenizer.vocab_size", tokenizer.vocab_size),
            ("coarse_stage.config.codebook_size", coarse_cfg.codebook_size,
             "codec.config.codebook_size", codec_cfg.codebook_size),
            ("coarse_stage.config.frames_per_semantic", coarse_cfg.frames_per_semantic,
             "codec frame rate / tokenizer frame rate", self.frames_per_semantic),
            ("fine_stage.config.codebook_size", fine_cfg.codebook_size,
             "codec.config.codebook_size", codec_cfg.codebook_size),
            ("fine_stage.config.num_levels", fine_cfg.num_levels,
             "codec.config.num_levels", codec_cfg.num_levels),
            ("fine_stage.config.coarse_levels", fine_cfg.coarse_levels,
             "coarse_stage.config.coarse_levels", coarse_cfg.coarse_levels),
        ]
        for name, value, other, expected in pairs:
            if value != expected:
                raise ValueError(f"{fn}: {name} = {value} does not match {other} = "
                                 f"{expected}")
        self.tokenizer = tokenizer
        self.codec = codec
        self.semantic_stage = semantic_stage
        self.coarse_stage = coarse_stage
        self.fine_stage = fine_stage

    def __repr__(self) -> str:
        return (f"AudioLM(sample_rate={self.sample_rate}, semantic={self.tokenizer.frame_rate:g}"
                f" Hz x {self.tokenizer.vocab_size}, acoustic={self.codec.frame_rate:g} Hz x "
                f"{self.codec.config.num_levels} levels (coarse "
                f"{self.coarse_stage.config.coarse_levels}) x {self.codec.config.codebook_size})")

    @property
    def sample_rate(self) -> int:
        """Hz of the waves read and written (the tokenizer's and the codec's)."""
        return self.codec.config.sample_rate

    @property
    def semantic_hop(self) -> int:
        """Samples per semantic frame: ``frames_per_semantic * codec.hop_length`` (640 for
        AudioLM's 25 Hz at 16 kHz); the shortest usable prompt."""
        return self.frames_per_semantic * self.codec.hop_length

    @property
    def device(self) -> torch.device:
        return next(self.codec.parameters()).device

    # ------------------------------------------------------------------------ helpers
    @staticmethod
    def _per_stage(fn: str, name: str, value: object) -> list:
        """One value (or None) for all three stages, or a sequence of three."""
        if isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) != 3:
                raise ValueError(f"{fn}: {name} must be one value or one per stage "
                                 f"({', '.join(_STAGES)}), got {len(value)} values")
            return list(value)
        return [value] * 3

    def _tokenize(self, fn: str, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic tokens ``(1, T)`` and codes ``(1, r T, Q)`` of ``wave (1, T hop)``."""
        vocab = self.tokenizer.vocab_size
        semantic = self.tokenizer.tokenize(wave)
        if not isinstance(semantic, torch.Tensor) or semantic.ndim != 2 \
                or semantic.shape[0] != 1:
            shape = tuple(semantic.shape) if isinstance(semantic, torch.Tensor) else semantic
            raise ValueError(f"{fn}: the tokenizer must return a (batch, frames) tensor, got "
                             f"{shape!r}")
        semantic = _check_ids(fn, "the tokenizer's output", semantic, ndim=2, high=vocab,
                              what="semantic tokens of its vocabulary")
        codes = self.codec.encode(wave)
        frames = min(semantic.shape[1], codes.shape[1] // self.frames_per_semantic)
        if frames < 1:
            raise ValueError(f"{fn}: the prompt gave no whole semantic frame (tokenizer: "
                             f"{semantic.shape[1]} frames, codec: {codes.shape[1]} frames)")
        return semantic[:, :frames], codes[:, :frames * self.frames_per_semantic]

    def _check_fits(self, fn: str, prompt_frames: int, new_frames: int,
                    semantic_prompt: torch.Tensor | None) -> None:
        """Fail before any sampling when a stage's sequence would exceed its max_length."""
        total = prompt_frames + new_frames
        checks = [("coarse", self.coarse_stage.config.sequence_length(total),
                   self.coarse_stage.config.transformer.max_length)]
        if semantic_prompt is not None:
            prompt_tokens = (torch.unique_consecutive(semantic_prompt[0]).numel()
                             if self.semantic_stage.config.deduplicate
                             else semantic_prompt.shape[1])
            checks.insert(0, ("semantic", 1 + prompt_tokens + new_frames,
                              self.semantic_stage.config.transformer.max_length))
        rate = self.tokenizer.frame_rate
        for stage, length, limit in checks:
            if length > limit:
                raise ValueError(
                    f"{fn}: {prompt_frames / rate:g} s of prompt + {new_frames / rate:g} s to "
                    f"generate need a {stage} sequence of {length} tokens, more than the "
                    f"{stage} stage's max_length={limit}; ask for fewer seconds (or train the "
                    f"stage with a larger max_length)")

    def _acoustic(self, semantic: torch.Tensor, prompt_codes: torch.Tensor | None,
                  temperature: list, top_k: list, generator: torch.Generator | None,
                  use_cache: bool) -> torch.Tensor:
        """All ``Q`` levels of the frames after the prompt: ``(1, r T - P, Q)``."""
        prompt_frames = 0 if prompt_codes is None else prompt_codes.shape[1]
        coarse_levels = self.coarse_stage.config.coarse_levels
        coarse = self.coarse_stage.generate(
            semantic, None if prompt_codes is None else prompt_codes[..., :coarse_levels],
            temperature=temperature[1], top_k=top_k[1], generator=generator,
            use_cache=use_cache)[:, prompt_frames:]
        fine = self.fine_stage.generate(coarse, temperature=temperature[2], top_k=top_k[2],
                                        generator=generator, use_cache=use_cache)
        return torch.cat((coarse, fine), dim=-1)

    # ------------------------------------------------------------------------- public
    @torch.no_grad()
    def continue_audio(self, prompt_wave: torch.Tensor, seconds: float, *,
                       sample_rate: int | None = None, include_prompt: bool = True,
                       temperature: float | Sequence[float] | None = None,
                       top_k: int | Sequence[int | None] | None = None,
                       generator: torch.Generator | None = None,
                       use_cache: bool = True) -> torch.Tensor:
        """Continue ``prompt_wave`` by ``seconds`` of generated audio.

        Args:
            prompt_wave: ``(samples,)`` or ``(1, samples)`` float at :attr:`sample_rate`, at
                least one semantic frame long (:attr:`semantic_hop` samples); a tail shorter
                than a semantic frame is dropped.
            seconds: length of the continuation (> 0); it holds exactly
                ``round(seconds * sample_rate)`` samples.
            sample_rate: the prompt's rate, checked against :attr:`sample_rate` when given.
            include_prompt: return the prompt's samples (as given, trimmed to whole semantic
                frames) followed by the continuation (True), or the continuation only.
            temperature, top_k: one value for all stages or one per stage (semantic, coarse,
                fine); None uses each stage's config (0.6 / 0.8 / 0.6, no top-k).
            generator: seeds every draw (global RNG when None).
            use_cache: decode with the KV cache (same result, much faster).

        Returns:
            The wave, ``(samples,)`` or ``(1, samples)`` as ``prompt_wave``, on the codec's
            device.
        """
        fn = "AudioLM.continue_audio"
        wave = self._check_wave(fn, prompt_wave, sample_rate)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"{fn}: seconds must be a positive finite number, got {seconds!r}")
        samples = round(seconds * self.sample_rate)
        if samples < 1:
            raise ValueError(f"{fn}: seconds={seconds!r} is less than one sample at "
                             f"{self.sample_rate} Hz")
        temperature = self._per_stage(fn, "temperature", temperature)
        top_k = self._per_stage(fn, "top_k", top_k)
        hop = self.semantic_hop
        wave = wave[:, :wave.shape[1] // hop * hop]
        semantic, codes = self._tokenize(fn, wave)
        prompt_frames = semantic.shape[1]
        new_frames = math.ceil(samples / hop)
        self._check_fits(fn, prompt_frames, new_frames, semantic)

        new_semantic = self.semantic_stage.generate(
            semantic, new_frames, temperature=temperature[0], top_k=top_k[0],
            generator=generator, use_cache=use_cache)
        new_codes = self._acoustic(torch.cat((semantic, new_semantic), dim=1), codes,
                                   temperature, top_k, generator, use_cache)
        decoded = self.codec.decode(torch.cat((codes, new_codes), dim=1))
        start = codes.shape[1] * self.codec.hop_length
        continuation = decoded[:, start:start + samples]
        if include_prompt:
            continuation = torch.cat((wave[:, :prompt_frames * hop], continuation), dim=1)
        return continuation.reshape(-1) if prompt_wave.ndim == 1 else continuation

    @torch.no_grad()
    def generate_from_semantic(self, tokens: torch.Tensor, *,
                               temperature: float | Sequence[float] | None = None,
                               top_k: int | Sequence[int | None] | None = None,
                               generator: torch.Generator | None = None,
                               use_cache: bool = True) -> torch.Tensor:
        """Audio for semantic ``tokens (1, frames)`` or ``(frames,)`` with no acoustic prompt
        (AudioLM Table III, "acoustic generation"): coarse, fine, decode. ``temperature`` and
        ``top_k`` as in :meth:`continue_audio` (the semantic entry is unused). Returns
        ``(1, frames * semantic_hop)`` (or 1-d for 1-d tokens)."""
        fn = "AudioLM.generate_from_semantic"
        check_tensor(fn, "tokens", tokens)
        if not (tokens.ndim == 1 or (tokens.ndim == 2 and tokens.shape[0] == 1)) \
                or tokens.shape[-1] == 0:
            raise ValueError(f"{fn}: tokens must have shape (frames,) or (1, frames) with "
                             f"frames >= 1, got {tuple(tokens.shape)}")
        semantic = _check_ids(fn, "tokens", tokens.reshape(1, -1), ndim=2,
                              high=self.tokenizer.vocab_size,
                              what="semantic tokens of the tokenizer's vocabulary")
        semantic = semantic.to(self.device)
        self._check_fits(fn, 0, semantic.shape[1], None)
        temperature = self._per_stage(fn, "temperature", temperature)
        top_k = self._per_stage(fn, "top_k", top_k)
        codes = self._acoustic(semantic, None, temperature, top_k, generator, use_cache)
        wave = self.codec.decode(codes)
        return wave.reshape(-1) if tokens.ndim == 1 else wave

    def _check_wave(self, fn: str, wave: object, sample_rate: int | None) -> torch.Tensor:
        check_tensor(fn, "prompt_wave", wave)
        if not (wave.ndim == 1 or (wave.ndim == 2 and wave.shape[0] == 1)):
            raise ValueError(f"{fn}: prompt_wave must have shape (samples,) or (1, samples), "
                             f"got {tuple(wave.shape)}")
        check_floating(fn, "prompt_wave", wave)
        check_finite(fn, "prompt_wave", wave)
        if sample_rate is not None:
            check_int(fn, "sample_rate", sample_rate)
            if sample_rate != self.sample_rate:
                raise ValueError(f"{fn}: the prompt is at {sample_rate} Hz but the tokenizer "
                                 f"and codec read {self.sample_rate} Hz; resample it first")
        if wave.shape[-1] < self.semantic_hop:
            raise ValueError(
                f"{fn}: prompt_wave has {wave.shape[-1]} samples, shorter than one semantic "
                f"frame ({self.semantic_hop} samples = "
                f"{1000 * self.semantic_hop / self.sample_rate:g} ms at {self.sample_rate} Hz), "
                f"the shortest prompt both tokenizers can read (the codec needs "
                f"{self.codec.hop_length})")
        return wave.reshape(1, -1).to(self.device)
