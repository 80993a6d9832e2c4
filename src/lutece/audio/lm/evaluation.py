"""Evaluation of AudioLM's tokenizers, stages and generations (Borsos et al., 2022, arXiv
2209.03143; issue 12, part 6).

- **Codec quality vs bitrate** (:func:`codec_quality`): SI-SNR, log-mel distance and, when the
  ``pesq`` package imports, PESQ of a :class:`~lutece.audio.lm.codec.SoundStream` decoding
  from its first ``n`` RVQ levels (SoundStream, Zeghidour et al. 2021, Fig. 5: quality
  against kbit/s for one model trained with quantizer dropout).
- **Token rates and perplexity** (:func:`token_rates`, :func:`stage_perplexity`): tokens per
  second of every stage from the configs (AudioLM Sec. IV: 25 Hz semantic, 50 Hz x ``Q'`` coarse,
  50 Hz x ``(Q - Q')`` fine), and ``exp`` of the mean next-token cross-entropy of a stage on
  held-out tokens.
- **Machine ABX** (:func:`abx_error`, :func:`abx_error_from_distances`), the discriminability
  test of AudioLM's Table I (after Schatz et al., "Evaluating speech features with the
  Minimal-Pair ABX task", Interspeech 2013, and the ZeroSpeech challenges): for triplets
  ``(A, B, X)`` where ``A`` and ``X`` share a category (a word, a note) and ``B`` does not,
  an error is ``d(A, X) >= d(B, X)``. ``d`` is a dynamic-time-warping distance
  (:func:`dtw_distance`, Sakoe & Chiba 1978) between frame sequences, with a 0/1 frame cost
  between token ids, or a cosine / Euclidean frame cost between continuous (or embedded)
  frames (:func:`frame_costs`). As in ABXpy (the ZeroSpeech toolkit, as we recall it), the
  DTW cost is the sum of frame costs along the cheapest path divided by that path's length.
- **Consistency of a continuation with its prompt** (AudioLM Table III and Sec. V-C, where a
  speaker classifier is used): cosine similarities of embeddings of each prompt and its own
  continuation against mismatched (prompt, other continuation) pairs
  (:func:`consistency_scores`, with the AUC and Cohen's d of the two groups): speaker
  embeddings for speech (:func:`speech_consistency`: GE2E d-vectors with Resemblyzer's
  shipped weights, or MFCC statistics, from :mod:`lutece.audio.diarization.embeddings`), and
  for music (:func:`music_consistency`) a pitch-class profile (chroma from an STFT, Fujishima
  1999, compared by correlation: the key) and mean MFCCs (the timbre).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..._validation import check_choice, check_finite, check_floating, check_tensor
from .codec import SoundStream
from .metrics import log_mel_distance, pesq_score, si_snr
from .semantic import MFCCFeatures, pitch_class_matrix
from .transformers import (
    CoarseStage,
    CoarseStageConfig,
    FineStage,
    FineStageConfig,
    SemanticStage,
)

__all__ = ["CodecQualityRow", "codec_quality", "token_rates", "stage_perplexity",
           "frame_costs", "dtw_distance", "pairwise_dtw", "abx_error",
           "abx_error_from_distances", "ConsistencyScore", "consistency_scores",
           "speaker_embeddings", "chroma_profile", "timbre_features", "speech_consistency",
           "music_consistency"]

_METRICS = ("ids", "cosine", "euclidean")


# ------------------------------------------------------------------- codec vs bitrate
@dataclass(frozen=True)
class CodecQualityRow:
    """One point of the quality-vs-bitrate curve of :func:`codec_quality`.

    Attributes:
        levels: RVQ levels decoded (the first ``levels``).
        kbps: bitrate, kbit/s (``levels * log2(codebook_size) * frame_rate / 1000``).
        si_snr_db: mean SI-SNR over the waves, dB (higher is better).
        log_mel_distance: mean log-mel L1 distance (lower is better).
        pesq: mean PESQ (MOS-LQO), or None when not computed.
    """

    levels: int
    kbps: float
    si_snr_db: float
    log_mel_distance: float
    pesq: float | None = None


def _pesq_available() -> bool:
    try:
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def codec_quality(codec: SoundStream, waves: torch.Tensor,
                  levels: Sequence[int] | None = None, *, pesq: bool | None = None,
                  batch_size: int = 16) -> list[CodecQualityRow]:
    """Quality of ``codec`` decoding from its first ``n`` RVQ levels, for each ``n`` in
    ``levels``: one :class:`CodecQualityRow` per ``n``, in increasing bitrate.

    Each wave is encoded once with all levels (:meth:`SoundStream.encode`, which never updates
    the codebooks) and decoded from the first ``n`` (:meth:`SoundStream.decode`); the output is
    cut to the input's length and compared with :func:`~lutece.audio.lm.metrics.si_snr`,
    :func:`~lutece.audio.lm.metrics.log_mel_distance` and (optionally)
    :func:`~lutece.audio.lm.metrics.pesq_score`, each averaged over the waves.

    Args:
        codec: a trained :class:`SoundStream` (run without gradients; its mode is kept).
        waves: ``(batch, samples)`` float at ``codec.config.sample_rate``, at least one hop.
        levels: level counts in ``[1, num_levels]`` (None: 1, 2, 4, 8, ... up to and with
            ``num_levels``).
        pesq: True computes PESQ (needs the ``pesq`` package and 8 or 16 kHz), False never,
            None when the package imports and the rate allows it.
        batch_size: waves coded at a time.

    Raises:
        TypeError / ValueError: a codec that is not a SoundStream, bad waves or levels.
    """
    fn = "codec_quality"
    if not isinstance(codec, SoundStream):
        raise TypeError(f"{fn}: codec must be a SoundStream, got {type(codec).__name__}")
    check_tensor(fn, "waves", waves)
    if waves.ndim != 2 or waves.shape[0] == 0:
        raise ValueError(f"{fn}: waves must have shape (batch >= 1, samples), got "
                         f"{tuple(waves.shape)}")
    check_floating(fn, "waves", waves)
    check_finite(fn, "waves", waves)
    total = codec.config.num_levels
    if levels is None:
        levels = sorted({min(2 ** i, total) for i in range(total.bit_length() + 1)})
    else:
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
            raise ValueError(f"{fn}: levels must be a non-empty sequence of ints, got "
                             f"{levels!r}")
        for value in levels:
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= total:
                raise ValueError(f"{fn}: every level count must be an int in [1, {total}] "
                                 f"(the codec's num_levels), got {value!r}")
        levels = sorted(set(levels))
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be a positive int, got {batch_size!r}")
    sample_rate = codec.config.sample_rate
    if pesq is None:
        pesq = _pesq_available() and sample_rate in (8000, 16000)
    elif pesq and not _pesq_available():
        raise ImportError(f"{fn}: pesq=True needs the optional `pesq` package; install it "
                          f"with `pip install pesq` or pass pesq=None")
    device = next(codec.parameters()).device
    samples = waves.shape[-1]
    sums = {n: np.zeros(3) for n in levels}
    with torch.no_grad():
        for chunk in torch.split(waves, batch_size):
            chunk = chunk.to(device=device, dtype=next(codec.parameters()).dtype)
            codes = codec.encode(chunk)
            for n in levels:
                decoded = codec.decode(codes, levels=n)[:, :samples]
                sums[n][0] += float(si_snr(decoded, chunk).sum())
                sums[n][1] += float(log_mel_distance(decoded, chunk, sample_rate).sum())
                if pesq:
                    sums[n][2] += float(pesq_score(decoded, chunk, sample_rate).sum())
    count = waves.shape[0]
    return [CodecQualityRow(n, codec.bitrate(n) / 1000.0, sums[n][0] / count,
                            sums[n][1] / count, sums[n][2] / count if pesq else None)
            for n in levels]


# ------------------------------------------------------------ token rates, perplexity
def token_rates(semantic_frame_rate: float, coarse: CoarseStageConfig, fine: FineStageConfig,
                *, semantic_tokens: torch.Tensor | None = None) -> dict[str, float]:
    """Tokens per second of each stream, and bits per second, from the stage configs.

    With semantic frame rate ``f`` (Hz), ``r = frames_per_semantic``, ``Q`` levels of ``N``
    codes of which ``Q'`` coarse, and ``K`` semantic ids: ``semantic = f``,
    ``coarse = f r Q'``, ``fine = f r (Q - Q')``, ``acoustic = f r Q`` tokens/s; the
    ``*_bps`` entries multiply by ``log2 K`` or ``log2 N`` (AudioLM: 25, 200, 400, 600 tokens/s;
    250, 2000, 4000, 6000 bit/s). With ``semantic_tokens (batch, frames)`` (ids with their
    repetitions), ``semantic_deduplicated`` is ``f`` times the mean fraction of tokens left
    after removing consecutive repetitions (what the semantic stage actually models).

    Returns:
        ``{"semantic", "coarse", "fine", "acoustic", "semantic_bps", "coarse_bps", "fine_bps",
        "acoustic_bps"[, "semantic_deduplicated"]}``.
    """
    fn = "token_rates"
    if isinstance(semantic_frame_rate, bool) or not isinstance(semantic_frame_rate,
                                                               (int, float)) \
            or not math.isfinite(semantic_frame_rate) or semantic_frame_rate <= 0:
        raise ValueError(f"{fn}: semantic_frame_rate must be a positive number of Hz, got "
                         f"{semantic_frame_rate!r}")
    if not isinstance(coarse, CoarseStageConfig):
        raise TypeError(f"{fn}: coarse must be a CoarseStageConfig, got "
                        f"{type(coarse).__name__}")
    if not isinstance(fine, FineStageConfig):
        raise TypeError(f"{fn}: fine must be a FineStageConfig, got {type(fine).__name__}")
    if coarse.codebook_size != fine.codebook_size or coarse.coarse_levels != fine.coarse_levels:
        raise ValueError(f"{fn}: the coarse and fine configs disagree (codebook_size "
                         f"{coarse.codebook_size} vs {fine.codebook_size}, coarse_levels "
                         f"{coarse.coarse_levels} vs {fine.coarse_levels})")
    frame = float(semantic_frame_rate) * coarse.frames_per_semantic
    code_bits = math.log2(coarse.codebook_size)
    rates = {"semantic": float(semantic_frame_rate),
             "coarse": frame * coarse.coarse_levels,
             "fine": frame * (fine.num_levels - fine.coarse_levels),
             "acoustic": frame * fine.num_levels}
    rates.update({"semantic_bps": rates["semantic"] * math.log2(coarse.semantic_vocab_size),
                  "coarse_bps": rates["coarse"] * code_bits,
                  "fine_bps": rates["fine"] * code_bits,
                  "acoustic_bps": rates["acoustic"] * code_bits})
    if semantic_tokens is not None:
        check_tensor(fn, "semantic_tokens", semantic_tokens)
        if semantic_tokens.ndim != 2 or semantic_tokens.shape[1] == 0 \
                or semantic_tokens.dtype.is_floating_point:
            raise ValueError(f"{fn}: semantic_tokens must be an integer (batch, frames >= 1) "
                             f"tensor, got {semantic_tokens.dtype} "
                             f"{tuple(semantic_tokens.shape)}")
        kept = (semantic_tokens[:, 1:] != semantic_tokens[:, :-1]).sum(1) + 1
        fraction = float((kept.double() / semantic_tokens.shape[1]).mean())
        rates["semantic_deduplicated"] = float(semantic_frame_rate) * fraction
    return rates


def _level_low(stage: Any, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Start of the id range each target belongs to, and the range's width: ``[0, K)`` for
    the semantic stage, the target's RVQ level range for the acoustic stages."""
    cfg = stage.config
    if isinstance(stage, SemanticStage):
        return torch.zeros_like(targets), cfg.vocab_size
    offset = stage.acoustic_offset if isinstance(stage, CoarseStage) else 0
    size = cfg.codebook_size
    return offset + (targets - offset).div(size, rounding_mode="floor") * size, size


def stage_perplexity(stage: SemanticStage | CoarseStage | FineStage,
                     batches: Iterable[Any] | torch.Tensor, *,
                     restrict_to_level: bool = False) -> float:
    """``exp`` of the mean next-token cross-entropy (nats) of ``stage`` over every target
    token of ``batches`` (held-out data): the perplexity, weighted by tokens, not batches.

    Args:
        stage: a semantic, coarse or fine stage (evaluated without dropout; its mode is
            restored).
        batches: an iterable of batches as :func:`~lutece.audio.lm.transformers.stage_loss`
            takes them (``semantic (batch, T)`` for the semantic stage, ``(semantic,
            codes)`` pairs for the coarse stage, ``codes (batch, frames, Q)`` for the fine
            stage); a bare tensor is one batch.
        restrict_to_level: False scores the stage's distribution over its whole vocabulary,
            as trained (a uniform model then scores ``stage.vocab_size``); True renormalizes
            it over the ids the target can be (the semantic ids, or its RVQ level's ``N``
            codes, as sampling does), so a uniform model scores ``K`` or ``N``.

    Raises:
        TypeError: not a stage; ValueError: no target token, or the stage's own input errors.
    """
    fn = "stage_perplexity"
    if not isinstance(stage, (SemanticStage, CoarseStage, FineStage)):
        raise TypeError(f"{fn}: stage must be a SemanticStage, CoarseStage or FineStage, got "
                        f"{type(stage).__name__}")
    if isinstance(batches, torch.Tensor):
        batches = [batches]
    if not isinstance(batches, Iterable):
        raise TypeError(f"{fn}: batches must be an iterable of batches, got "
                        f"{type(batches).__name__}")
    device = stage.transformer.head.weight.device
    was_training = stage.training
    stage.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in batches:
                parts = batch if isinstance(batch, (tuple, list)) else (batch,)
                sequence = stage.build_sequence(*(part.to(device) for part in parts))
                logits, _ = stage.transformer(sequence.ids[:, :-1])
                targets = sequence.ids[:, 1:]
                mask = sequence.loss_mask[:, 1:]
                logits, targets = logits[mask].double(), targets[mask]
                if restrict_to_level:
                    low, size = _level_low(stage, targets)
                    ids = torch.arange(logits.shape[-1], device=device)
                    outside = (ids < low[:, None]) | (ids >= low[:, None] + size)
                    logits = logits.masked_fill(outside, -math.inf)
                total += float(F.cross_entropy(logits, targets, reduction="sum"))
                count += int(targets.numel())
    finally:
        stage.train(was_training)
    if count == 0:
        raise ValueError(f"{fn}: batches hold no target token (empty iterable?)")
    return math.exp(total / count)


# ---------------------------------------------------------------------------- DTW + ABX
def frame_costs(a: torch.Tensor, b: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """Frame-to-frame costs ``(batch, n, m)`` between sequences ``a`` and ``b``.

    - ``"ids"``: ``a (batch, n)``, ``b (batch, m)`` integer token ids; cost ``[a_i != b_j]``
      (0 or 1, the cosine distance between one-hot frames).
    - ``"cosine"``: ``a (batch, n, d)``, ``b (batch, m, d)`` float; ``1 - cos(a_i, b_j)``
      (a zero frame is at distance 1 from everything).
    - ``"euclidean"``: as cosine; ``||a_i - b_j||``.
    """
    fn = "frame_costs"
    check_choice(fn, "metric", metric, _METRICS)
    check_tensor(fn, "a", a)
    check_tensor(fn, "b", b)
    if metric == "ids":
        if a.ndim != 2 or b.ndim != 2 or a.dtype.is_floating_point or b.dtype.is_floating_point:
            raise ValueError(f"{fn}: metric 'ids' needs integer (batch, frames) tensors, got "
                             f"{a.dtype} {tuple(a.shape)} and {b.dtype} {tuple(b.shape)}")
        return (a[:, :, None] != b[:, None, :]).float()
    if a.ndim != 3 or b.ndim != 3 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{fn}: metric {metric!r} needs float (batch, frames, dim) tensors "
                         f"of one dim, got {tuple(a.shape)} and {tuple(b.shape)}")
    check_floating(fn, "a", a)
    check_floating(fn, "b", b)
    if metric == "cosine":
        return 1.0 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).transpose(1, 2)
    return torch.cdist(a, b)


def dtw_distance(cost: torch.Tensor, lengths_a: torch.Tensor | None = None,
                 lengths_b: torch.Tensor | None = None, *,
                 normalize: bool = True) -> torch.Tensor:
    """Dynamic time warping over frame costs ``(batch, n, m)`` (or ``(n, m)``): ``(batch,)``
    (or a scalar).

    ``D[i, j] = c[i, j] + min(D[i-1, j-1], D[i-1, j], D[i, j-1])`` with ``D[0, 0] = c[0, 0]``
    (steps (1, 1), (1, 0), (0, 1); Sakoe & Chiba 1978, without slope constraint), so
    ``D[n-1, m-1]`` is the least total cost of a monotone path from the first to the last
    frame pair. ``normalize`` divides it by that path's number of cells (ABXpy's
    normalization; among equal-cost predecessors the diagonal, then the vertical step, is
    taken). Computed one anti-diagonal at a time, vectorized over the batch and the
    diagonal's cells: ``n + m - 1`` steps.

    Args:
        cost: non-negative or any real costs, float.
        lengths_a, lengths_b: ``(batch,)`` true lengths of right-padded sequences (None: all
            ``n`` / ``m``); padded cells never reach the result.
    """
    fn = "dtw_distance"
    check_tensor(fn, "cost", cost)
    single = cost.ndim == 2
    if single:
        cost = cost[None]
    if cost.ndim != 3 or cost.shape[1] == 0 or cost.shape[2] == 0:
        raise ValueError(f"{fn}: cost must have shape (batch, n >= 1, m >= 1) or (n, m), got "
                         f"{tuple(cost.shape)}")
    check_floating(fn, "cost", cost)
    check_finite(fn, "cost", cost)
    batch, n, m = cost.shape
    lengths = []
    for name, value, full in (("lengths_a", lengths_a, n), ("lengths_b", lengths_b, m)):
        if value is None:
            lengths.append(torch.full((batch,), full, dtype=torch.long, device=cost.device))
            continue
        check_tensor(fn, name, value)
        value = torch.as_tensor(value, device=cost.device).long()
        if value.shape != (batch,) or bool((value < 1).any()) or bool((value > full).any()):
            raise ValueError(f"{fn}: {name} must be a (batch,) = ({batch},) tensor of lengths "
                             f"in [1, {full}], got {value.tolist()}")
        lengths.append(value)
    total = torch.full((batch, n + 1, m + 1), math.inf, dtype=cost.dtype, device=cost.device)
    steps = torch.zeros((batch, n + 1, m + 1), dtype=cost.dtype, device=cost.device)
    total[:, 0, 0] = 0.0
    for k in range(2, n + m + 1):  # cells (i, j) with i + j = k, 1-based
        i = torch.arange(max(1, k - m), min(n, k - 1) + 1, device=cost.device)
        j = k - i
        candidates = torch.stack((total[:, i - 1, j - 1], total[:, i - 1, j],
                                  total[:, i, j - 1]), dim=-1)
        lengths_before = torch.stack((steps[:, i - 1, j - 1], steps[:, i - 1, j],
                                      steps[:, i, j - 1]), dim=-1)
        best, choice = candidates.min(dim=-1)
        total[:, i, j] = cost[:, i - 1, j - 1] + best
        steps[:, i, j] = lengths_before.gather(-1, choice[..., None])[..., 0] + 1
    rows = torch.arange(batch, device=cost.device)
    result = total[rows, lengths[0], lengths[1]]
    if normalize:
        result = result / steps[rows, lengths[0], lengths[1]]
    return result[0] if single else result


def _as_sequence(fn: str, name: str, value: Any, metric: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(np.asarray(value))
    want = 1 if metric == "ids" else 2
    if value.ndim != want or value.shape[0] == 0:
        shape = "(frames,) integer ids" if metric == "ids" else "(frames, dim) floats"
        raise ValueError(f"{fn}: with metric {metric!r} every item of {name} must be a "
                         f"non-empty {shape} tensor, got shape {tuple(value.shape)}")
    if metric == "ids":
        if value.dtype.is_floating_point:
            raise ValueError(f"{fn}: metric 'ids' needs integer token ids in {name}, got "
                             f"{value.dtype}")
        return value.long()
    check_floating(fn, name, value)
    check_finite(fn, name, value)
    return value.float()


def _pad(items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([item.shape[0] for item in items])
    return torch.nn.utils.rnn.pad_sequence(list(items), batch_first=True), lengths


def _dtw_pairs(left: Sequence[torch.Tensor], right: Sequence[torch.Tensor], metric: str,
               normalize: bool, chunk: int) -> torch.Tensor:
    """DTW between ``left[p]`` and ``right[p]`` for every pair ``p``: ``(pairs,)``; pairs are
    sorted by length and padded chunk by chunk."""
    order = sorted(range(len(left)), key=lambda p: (left[p].shape[0], right[p].shape[0]))
    out = torch.empty(len(left), dtype=torch.float64)
    for start in range(0, len(order), chunk):
        picks = order[start:start + chunk]
        a, length_a = _pad([left[p] for p in picks])
        b, length_b = _pad([right[p] for p in picks])
        cost = frame_costs(a, b, metric).double()
        out[picks] = dtw_distance(cost, length_a, length_b, normalize=normalize).cpu()
    return out


def _check_metric(fn: str, distance: object) -> None:
    if isinstance(distance, str):
        check_choice(fn, "distance", distance, _METRICS)
    elif not callable(distance):
        raise TypeError(f"{fn}: distance must be one of {', '.join(map(repr, _METRICS))} or a "
                        f"callable(u, v) -> float, got {type(distance).__name__}")


def pairwise_dtw(sequences: Sequence[Any], metric: str = "cosine", *,
                 normalize: bool = True, chunk: int = 2048) -> torch.Tensor:
    """The ``(n, n)`` symmetric matrix of :func:`dtw_distance` between every two of
    ``sequences`` (``(frames,)`` integer ids for ``metric="ids"``, ``(frames, dim)`` floats
    for ``"cosine"`` / ``"euclidean"``), float64. Each unordered pair is computed once, in
    length-sorted padded chunks of ``chunk`` pairs."""
    fn = "pairwise_dtw"
    check_choice(fn, "metric", metric, _METRICS)
    if isinstance(sequences, torch.Tensor) or not isinstance(sequences, Sequence) \
            or len(sequences) == 0:
        raise ValueError(f"{fn}: sequences must be a non-empty list of tensors")
    items = [_as_sequence(fn, "sequences", item, metric) for item in sequences]
    if metric != "ids" and len({item.shape[1] for item in items}) > 1:
        raise ValueError(f"{fn}: every sequence must have the same frame dim, got "
                         f"{sorted({item.shape[1] for item in items})}")
    n = len(items)
    first, second = torch.triu_indices(n, n).tolist()
    values = _dtw_pairs([items[i] for i in first], [items[j] for j in second], metric,
                        normalize, chunk)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix[first, second] = values
    matrix[second, first] = values
    return matrix


def abx_error(representations_a: Sequence[Any], b: Sequence[Any], x: Sequence[Any],
              distance: str | Callable[[Any, Any], float] = "cosine", *,
              tie_weight: float = 1.0, normalize: bool = True) -> float:
    """The ABX error rate of given triplets: the fraction of ``i`` with
    ``d(A_i, X_i) >= d(B_i, X_i)``, where ``A_i`` and ``X_i`` share a category and ``B_i``
    does not (the caller builds the triplets).

    Args:
        representations_a, b, x: equal-length sequences of representations: ``(frames,)``
            token ids (``distance="ids"``), ``(frames, dim)`` frames (``"cosine"`` /
            ``"euclidean"``), or anything ``distance`` takes.
        distance: ``"ids"`` / ``"cosine"`` / ``"euclidean"``: :func:`dtw_distance` over
            :func:`frame_costs` of that metric; or a callable ``(u, v) -> float``.
        tie_weight: what a tie ``d(A, X) == d(B, X)`` counts (1: an error, the ``>=`` rule;
            ZeroSpeech counts 0.5).
        normalize: of :func:`dtw_distance`.

    Returns:
        The error rate in ``[0, 1]`` (0: perfect discrimination, 0.5: chance).
    """
    fn = "abx_error"
    _check_metric(fn, distance)
    lists = []
    for name, value in (("representations_a", representations_a), ("b", b), ("x", x)):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise TypeError(f"{fn}: {name} must be a sequence of representations, got "
                            f"{type(value).__name__}")
        lists.append(list(value))
    if not lists[0] or len({len(v) for v in lists}) > 1:
        raise ValueError(f"{fn}: representations_a, b and x must be non-empty and of one "
                         f"length, got {[len(v) for v in lists]}")
    if not 0.0 <= tie_weight <= 1.0:
        raise ValueError(f"{fn}: tie_weight must be in [0, 1], got {tie_weight!r}")
    if callable(distance) and not isinstance(distance, str):
        d_ax = torch.tensor([float(distance(u, v)) for u, v in zip(lists[0], lists[2])])
        d_bx = torch.tensor([float(distance(u, v)) for u, v in zip(lists[1], lists[2])])
    else:
        a_items, b_items, x_items = ([_as_sequence(fn, name, item, distance) for item in v]
                                     for name, v in zip(("representations_a", "b", "x"), lists))
        d_ax = _dtw_pairs(a_items, x_items, distance, normalize, 2048)
        d_bx = _dtw_pairs(b_items, x_items, distance, normalize, 2048)
    errors = (d_ax > d_bx).double() + tie_weight * (d_ax == d_bx).double()
    return float(errors.mean())


def abx_error_from_distances(distances: torch.Tensor, labels: Sequence[Any] | torch.Tensor,
                             groups: Sequence[Any] | torch.Tensor | None = None, *,
                             mode: str = "any", tie_weight: float = 1.0) -> float:
    """The ABX error rate over *every* triplet of ``n`` items, from their ``(n, n)``
    distances: the fraction of triplets ``(A, B, X)``, ``A != X``, ``label[A] == label[X] !=
    label[B]`` with ``d(A, X) >= d(B, X)`` (ties count ``tie_weight``).

    ``groups`` (e.g. speakers or instruments) and ``mode`` pick the triplets as ZeroSpeech's
    ABX does: ``"any"`` (all triplets), ``"within"`` (A, B, X of one group) or ``"across"``
    (A and B of one group, X of another): the across task asks the representation to
    ignore the group. Vectorized per ``X``: ``O(n^2)`` memory at a time.

    Raises:
        ValueError: bad shapes, a mode that needs groups without them, or no valid triplet.
    """
    fn = "abx_error_from_distances"
    check_tensor(fn, "distances", distances)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(f"{fn}: distances must be a square (n, n) matrix, got "
                         f"{tuple(distances.shape)}")
    check_floating(fn, "distances", distances)
    check_choice(fn, "mode", mode, ("any", "within", "across"))
    if not 0.0 <= tie_weight <= 1.0:
        raise ValueError(f"{fn}: tie_weight must be in [0, 1], got {tie_weight!r}")
    n = distances.shape[0]

    def codes(name: str, values: Any) -> torch.Tensor:
        values = list(values.tolist() if isinstance(values, torch.Tensor) else values)
        if len(values) != n:
            raise ValueError(f"{fn}: {name} must have one entry per item ({n}), got "
                             f"{len(values)}")
        index: dict[Any, int] = {}
        return torch.tensor([index.setdefault(v, len(index)) for v in values])

    label = codes("labels", labels)
    if mode != "any" and groups is None:
        raise ValueError(f"{fn}: mode={mode!r} needs groups (e.g. the speaker of each item)")
    group = codes("groups", groups) if groups is not None else None
    d = distances.detach().double().cpu()
    errors, count = 0.0, 0
    for x in range(n):
        a_ok = label == label[x]
        a_ok[x] = False
        b_ok = label != label[x]
        if group is not None and mode == "within":
            a_ok &= group == group[x]
            b_ok &= group == group[x]
        elif group is not None and mode == "across":
            a_ok &= group != group[x]
            b_ok &= group != group[x]
        a_index, b_index = a_ok.nonzero()[:, 0], b_ok.nonzero()[:, 0]
        if not len(a_index) or not len(b_index):
            continue
        d_ax, d_bx = d[x, a_index][:, None], d[x, b_index][None, :]
        wrong = (d_ax > d_bx).double() + tie_weight * (d_ax == d_bx).double()
        if group is not None and mode == "across":
            allowed = group[a_index][:, None] == group[b_index][None, :]
            errors += float(wrong[allowed].sum())
            count += int(allowed.sum())
        else:
            errors += float(wrong.sum())
            count += wrong.numel()
    if count == 0:
        raise ValueError(f"{fn}: no valid (A, B, X) triplet for mode={mode!r}; each label "
                         f"needs two items (and, across groups, two groups)")
    return errors / count


# ------------------------------------------------------------------------ consistency
@dataclass(frozen=True)
class ConsistencyScore:
    """Similarity of each prompt to its own continuation against mismatched pairs.

    Attributes:
        matched: mean cosine similarity of (prompt ``i``, continuation ``i``).
        random: mean over mismatched pairs (prompt ``i``, continuation ``j != i``, of another
            identity when identities are given): the chance level.
        auc: ``P(matched > mismatched)`` (+ half the ties; the Mann-Whitney AUC; 0.5 is
            chance, 1 perfect separation).
        effect_size: Cohen's d, ``(matched - random) / pooled std`` (inf when both groups
            are constant and differ).
        matched_values: ``(n,)`` float64; random_values: ``(pairs,)`` float64.
    """

    matched: float
    random: float
    auc: float
    effect_size: float
    matched_values: torch.Tensor
    random_values: torch.Tensor


def consistency_scores(prompt_embeddings: torch.Tensor,
                       continuation_embeddings: torch.Tensor,
                       identities: Sequence[Any] | None = None) -> ConsistencyScore:
    """Cosine similarities of ``prompt_embeddings (n, d)`` with ``continuation_embeddings
    (n, d)`` (row ``i`` continues prompt ``i``): matched pairs (the diagonal) against
    mismatched ones (off the diagonal; only pairs of different ``identities`` when given,
    so that two prompts of one voice do not count as a mismatch)."""
    fn = "consistency_scores"
    for name, value in (("prompt_embeddings", prompt_embeddings),
                        ("continuation_embeddings", continuation_embeddings)):
        check_tensor(fn, name, value)
        check_floating(fn, name, value)
        check_finite(fn, name, value)
    if prompt_embeddings.ndim != 2 or prompt_embeddings.shape != continuation_embeddings.shape:
        raise ValueError(f"{fn}: prompt_embeddings and continuation_embeddings must both be "
                         f"(n, d) of one shape, got {tuple(prompt_embeddings.shape)} and "
                         f"{tuple(continuation_embeddings.shape)}")
    n = prompt_embeddings.shape[0]
    if n < 2:
        raise ValueError(f"{fn}: need at least 2 pairs to form mismatched pairs, got {n}")
    similarity = (F.normalize(prompt_embeddings.double(), dim=-1)
                  @ F.normalize(continuation_embeddings.double(), dim=-1).T).cpu()
    mismatched = ~torch.eye(n, dtype=torch.bool)
    if identities is not None:
        identities = list(identities)
        if len(identities) != n:
            raise ValueError(f"{fn}: identities must have one entry per pair ({n}), got "
                             f"{len(identities)}")
        index: dict[Any, int] = {}
        ids = torch.tensor([index.setdefault(v, len(index)) for v in identities])
        mismatched &= ids[:, None] != ids[None, :]
    if not bool(mismatched.any()):
        raise ValueError(f"{fn}: no mismatched pair of different identities")
    matched, random = similarity.diagonal().clone(), similarity[mismatched]
    greater = (matched[:, None] > random[None, :]).double().mean()
    ties = (matched[:, None] == random[None, :]).double().mean()
    pooled = math.sqrt(((n - 1) * float(matched.var(unbiased=True))
                        + (len(random) - 1) * float(random.var(unbiased=True) if len(random) > 1
                                                    else 0.0))
                       / max(n + len(random) - 2, 1))
    difference = float(matched.mean() - random.mean())
    if pooled > 1e-12:
        effect = difference / pooled
    else:
        effect = 0.0 if abs(difference) <= 1e-12 else math.copysign(math.inf, difference)
    return ConsistencyScore(float(matched.mean()), float(random.mean()),
                            float(greater + 0.5 * ties), effect, matched, random)


def _wave_list(fn: str, name: str, waves: Any) -> list[torch.Tensor]:
    """Mono waves as a list of 1-d float tensors."""
    if isinstance(waves, (torch.Tensor, np.ndarray)):
        waves = torch.as_tensor(waves)
        if waves.ndim != 2:
            raise ValueError(f"{fn}: {name} must be (batch, samples) or a list of 1-d waves, "
                             f"got shape {tuple(waves.shape)}")
        items = list(waves)
    elif isinstance(waves, Sequence) and not isinstance(waves, (str, bytes)):
        items = [torch.as_tensor(np.asarray(w)) if not isinstance(w, torch.Tensor) else w
                 for w in waves]
    else:
        raise TypeError(f"{fn}: {name} must be a tensor or a list of waves, got "
                        f"{type(waves).__name__}")
    if not items:
        raise ValueError(f"{fn}: {name} is empty")
    for index, wave in enumerate(items):
        if wave.ndim != 1 or wave.shape[0] == 0 or not wave.is_floating_point():
            raise ValueError(f"{fn}: {name}[{index}] must be a non-empty 1-d float wave, got "
                             f"{wave.dtype} {tuple(wave.shape)}")
        check_finite(fn, f"{name}[{index}]", wave)
    return [wave.detach().cpu().float() for wave in items]


def _check_rate(fn: str, sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1000:
        raise ValueError(f"{fn}: sample_rate must be an int >= 1000 Hz, got {sample_rate!r}")
    return sample_rate


@functools.lru_cache(maxsize=1)
def _dvector_encoder() -> Any:
    from ..diarization.embeddings import DVectorEncoder

    return DVectorEncoder.pretrained()


def _dvector_available() -> bool:
    from ..diarization.embeddings import DVectorEncoder

    try:
        return DVectorEncoder.resemblyzer_weights_path().is_file()
    except ImportError:
        return False


def _standardize(x: torch.Tensor) -> torch.Tensor:
    """Z-score every column over the rows (constant columns are only centered)."""
    x = x - x.mean(0)
    scale = x.std(0, unbiased=False)
    return x / torch.where(scale > 1e-8, scale, torch.ones_like(scale))


def speaker_embeddings(waves: Any, sample_rate: int, method: str = "auto", *,
                       window_seconds: float = 1.6) -> tuple[torch.Tensor, str]:
    """Speaker embeddings ``(n, d)`` of ``waves`` (``(n, samples)`` or a list of 1-d waves of
    any lengths), and the method used.

    - ``"dvector"``: GE2E d-vectors (:class:`lutece.audio.diarization.embeddings.DVectorEncoder`
      with Resemblyzer's shipped weights, loaded once), averaged over windows of
      ``window_seconds`` every half window (one window from the start for a shorter wave),
      then L2-normalized; 256-d.
    - ``"mfcc"``: :func:`~lutece.audio.diarization.embeddings.mfcc_statistics` of the whole
      wave (mean and std of MFCCs and deltas), z-scored over the ``n`` waves (so the
      embedding of one wave depends on the set: embed prompts and continuations together).
    - ``"auto"``: d-vectors when the weights are installed, else MFCC statistics.
    """
    fn = "speaker_embeddings"
    check_choice(fn, "method", method, ("auto", "dvector", "mfcc"))
    sample_rate = _check_rate(fn, sample_rate)
    items = _wave_list(fn, "waves", waves)
    if method == "auto":
        method = "dvector" if _dvector_available() else "mfcc"
    from ..diarization.embeddings import mfcc_statistics

    rows = []
    if method == "dvector":
        encoder = _dvector_encoder()
        for wave in items:
            seconds = wave.shape[0] / sample_rate
            duration = min(window_seconds, seconds)
            starts = np.arange(0.0, max(seconds - duration, 0.0) + 1e-9, duration / 2)
            vectors = torch.from_numpy(encoder.embed_windows(wave, sample_rate, starts,
                                                             duration))
            rows.append(F.normalize(vectors.mean(0), dim=0))
        return torch.stack(rows), method
    for wave in items:
        rows.append(torch.from_numpy(mfcc_statistics(wave, sample_rate, [0.0],
                                                     wave.shape[0] / sample_rate,
                                                     standardize=False))[0])
    return _standardize(torch.stack(rows).double()).float(), method


def chroma_profile(waves: Any, sample_rate: int, *, min_freq: float = 55.0,
                   max_freq: float | None = None) -> torch.Tensor:
    """Pitch-class profiles ``(n, 12)`` (C, C#, ..., B), each summing to 1 (Fujishima's PCP,
    1999): the STFT power (Hann window of ``n_fft`` = the power of two nearest
    ``sample_rate / 4``, about 4 Hz bins; hop ``n_fft / 4``) of every bin between
    ``min_freq`` and ``max_freq`` (default ``min(5000, sample_rate / 2)``) Hz added to the pitch
    class ``round(12 log2(f / 440) + 69) mod 12`` of its centre frequency, summed over
    frames."""
    fn = "chroma_profile"
    sample_rate = _check_rate(fn, sample_rate)
    items = _wave_list(fn, "waves", waves)
    max_freq = min(5000.0, sample_rate / 2) if max_freq is None else float(max_freq)
    n_fft = 2 ** round(math.log2(sample_rate / 4))
    assignment = pitch_class_matrix(sample_rate, n_fft, min_freq, max_freq, fn=fn)  # (bins, 12)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    rows = []
    for wave in items:
        wave = wave.double()
        if wave.shape[0] < n_fft:
            wave = F.pad(wave, (0, n_fft - wave.shape[0]))
        spectrum = torch.stft(wave, n_fft, hop_length=n_fft // 4, window=window,
                              center=False, return_complex=True).abs().square()
        profile = spectrum.sum(-1) @ assignment
        rows.append(profile / profile.sum().clamp_min(1e-12))
    return torch.stack(rows)


def timbre_features(waves: Any, sample_rate: int, *, n_mfcc: int = 20) -> torch.Tensor:
    """Mean MFCCs ``(n, n_mfcc - 1)`` of each wave (coefficients 1 .. n_mfcc - 1; ``c_0``,
    the loudness, is dropped): the spectral envelope averaged over the wave's frames
    (:class:`~lutece.audio.lm.semantic.MFCCFeatures`, 40 mel bands, 10 ms hop), a classic
    timbre descriptor."""
    fn = "timbre_features"
    sample_rate = _check_rate(fn, sample_rate)
    items = _wave_list(fn, "waves", waves)
    if isinstance(n_mfcc, bool) or not isinstance(n_mfcc, int) or not 2 <= n_mfcc <= 40:
        raise ValueError(f"{fn}: n_mfcc must be an int in [2, 40], got {n_mfcc!r}")
    hop = sample_rate // 100
    extractor = MFCCFeatures(sample_rate, n_mfcc=n_mfcc, n_mels=40, hop_length=hop,
                             deltas=False)
    rows = []
    with torch.no_grad():
        for wave in items:
            if wave.shape[0] < hop:
                raise ValueError(f"{fn}: every wave needs at least {hop} samples (10 ms), got "
                                 f"{wave.shape[0]}")
            rows.append(extractor(wave[None])[0, :, 1:].mean(0))
    return torch.stack(rows)


def speech_consistency(prompts: Any, continuations: Any, sample_rate: int, *,
                       identities: Sequence[Any] | None = None,
                       method: str = "auto") -> tuple[ConsistencyScore, str]:
    """Speaker consistency of continuations with their prompts: :func:`consistency_scores`
    of :func:`speaker_embeddings` (prompts and continuations embedded together), and the
    embedding method used. ``identities``: the speaker of each prompt (mismatched pairs
    are then of different speakers)."""
    fn = "speech_consistency"
    prompt_list = _wave_list(fn, "prompts", prompts)
    continuation_list = _wave_list(fn, "continuations", continuations)
    if len(prompt_list) != len(continuation_list):
        raise ValueError(f"{fn}: {len(prompt_list)} prompts but {len(continuation_list)} "
                         f"continuations")
    embeddings, used = speaker_embeddings(prompt_list + continuation_list, sample_rate, method)
    n = len(prompt_list)
    return consistency_scores(embeddings[:n], embeddings[n:], identities), used


def music_consistency(prompts: Any, continuations: Any, sample_rate: int, *,
                      keys: Sequence[Any] | None = None,
                      instruments: Sequence[Any] | None = None
                      ) -> dict[str, ConsistencyScore]:
    """Key and timbre consistency of music continuations with their prompts.

    - ``"pitch_class"``: :func:`chroma_profile` compared by correlation (cosine of the
      profiles minus their mean, as Krumhansl-Schmuckler key finding correlates profiles);
      mismatched pairs of different ``keys`` when given.
    - ``"timbre"``: :func:`timbre_features` z-scored over prompts and continuations together,
      compared by cosine; mismatched pairs of different ``instruments`` when given.
    """
    fn = "music_consistency"
    sample_rate = _check_rate(fn, sample_rate)
    prompt_list = _wave_list(fn, "prompts", prompts)
    continuation_list = _wave_list(fn, "continuations", continuations)
    if len(prompt_list) != len(continuation_list):
        raise ValueError(f"{fn}: {len(prompt_list)} prompts but {len(continuation_list)} "
                         f"continuations")
    n = len(prompt_list)
    everything = prompt_list + continuation_list
    chroma = chroma_profile(everything, sample_rate)
    chroma = chroma - chroma.mean(-1, keepdim=True)
    timbre = _standardize(timbre_features(everything, sample_rate).double())
    return {"pitch_class": consistency_scores(chroma[:n], chroma[n:], keys),
            "timbre": consistency_scores(timbre[:n], timbre[n:], instruments)}
