"""Residual vector quantization (RVQ) with EMA codebooks, the bottleneck of SoundStream.

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec" (2021, arXiv 2107.03312),
Algorithm 1, on top of van den Oord et al., "Neural Discrete Representation Learning"
(VQ-VAE, NeurIPS 2017). With ``Q`` levels of ``K`` codewords each, an input vector ``x``
(one latent frame) is quantized level by level on the residual::

    r_1 = x
    k_l = argmin_k ||r_l - c_{l,k}||^2          (the code of level l)
    r_{l+1} = r_l - c_{l,k_l}
    x_hat = sum_{l <= n_q} c_{l,k_l}            (n_q <= Q levels: bitrate scalability)

Training (``module.train()``) adds what makes the codebooks usable (all configurable):

- **EMA codebooks** (VQ-VAE, Appendix A.1): with ``n_k`` the vectors assigned to code k in
  this batch and ``s_k`` their sum, ``N_k <- g N_k + (1 - g) n_k``,
  ``m_k <- g m_k + (1 - g) s_k`` and ``c_k = m_k / N~_k``, where the Laplace-smoothed count
  ``N~_k = (N_k + eps) / (n + K eps) * n`` with ``n = sum_k N_k`` keeps empty codes finite.
  Decay ``g = 0.99`` as EnCodec's ``core_vq`` and VQ-VAE (audiolm-pytorch's SoundStream
  uses 0.95).
- **k-means initialization** (SoundStream Sec. 3.3): on the first training batch each
  level's codebook is set by a few seeded Lloyd iterations on that level's residuals.
- **Dead-code replacement** (SoundStream Sec. 3.3): after the EMA update, a code whose EMA
  count ``N_k`` fell below ``dead_code_threshold`` (2, as EnCodec and audiolm-pytorch) is
  replaced by a random residual vector of the current batch (its ``N_k`` is set to the
  threshold and ``m_k`` to the vector times the threshold, so ``c_k`` is that vector).
- **Quantizer dropout** (SoundStream Sec. 3.3, Alg. 1): each training batch draws
  ``n_q ~ U{1, ..., Q}`` and uses only the first ``n_q`` levels, so one model serves every
  bitrate.
- **Straight-through estimator** (VQ-VAE Eq. 3): the output is ``x + sg(x_hat - x)``, whose
  Jacobian with respect to ``x`` is the identity.
- **Commitment loss** (VQ-VAE Eq. 3, third term): ``beta * mean_l mse(r_l, sg(c_{l,k_l}))``,
  averaged over the used levels as EnCodec's ``ResidualVectorQuantizer`` does; ``beta = 1``
  (EnCodec's commitment weight). Gradients reach ``x`` through every level's residual.

Distances use ``||r||^2 - 2 r.c + ||c||^2`` (one matrix product per level).

Under ``torch.distributed`` (data-parallel training, one batch per rank) every rank keeps the
same codebooks and EMA buffers, provided they start equal and every rank runs each training
forward: the batch counts and sums are all-reduced before the EMA update; the quantizer
dropout draw is rank 0's (each level's update is a collective, so all ranks must use the same
number of levels); k-means runs on the first batches of all ranks, gathered in rank order
(then rank 0's result is broadcast); and dead codes are replaced by rows drawn from the
residuals of all ranks (rank 0 draws the row indices). With one process none of this changes
anything, and ``W`` ranks of batch ``b`` then update the codebooks as one process would with
the ``W b`` rows in rank order (up to float rounding of the sums).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from ..._validation import check_finite, check_floating, check_int, check_tensor

__all__ = ["ResidualVectorQuantizer", "QuantizerOutput"]


@dataclass(frozen=True)
class QuantizerOutput:
    """What :meth:`ResidualVectorQuantizer.forward` returns (``n_q`` = levels used).

    Attributes:
        quantized: ``(batch, frames, dim)``, ``x + sg(x_hat - x)`` (straight-through).
        codes: ``(batch, frames, n_q)`` int64 in ``[0, codebook_size)``.
        commitment_loss: scalar, ``commitment_weight * level_losses.mean()``.
        level_losses: ``(n_q,)`` unweighted ``mse(r_l, sg(c_{l,k_l}))`` per level.
        perplexity: ``(n_q,)`` ``exp(entropy)`` of each level's code histogram in this batch
            (``codebook_size`` when all codes are equally used, 1 when one code is).
        usage: ``(n_q,)`` fraction of each level's codes used at least once in this batch.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    level_losses: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor

    @property
    def num_levels(self) -> int:
        """``n_q``, the number of levels used."""
        return self.codes.shape[-1]


def _squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(n, K)`` squared Euclidean distances ``||x||^2 - 2 x.c + ||c||^2``."""
    return (x.pow(2).sum(1, keepdim=True) - 2.0 * x @ codebook.T
            + codebook.pow(2).sum(1)[None, :])


def _nearest(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``(n,)`` int64 index of the nearest codeword to each row of ``x``."""
    return _squared_distances(x, codebook).argmin(dim=1)


def _world_size() -> int:
    """Ranks of the process group that is up; 1 when none is."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks when a process group with more than one rank is up."""
    if _world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def _broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Overwrite ``tensor`` (in place) with rank 0's when a process group with more than one
    rank is up."""
    if _world_size() > 1:
        dist.broadcast(tensor, src=0)
    return tensor


def _row_counts(rows: int, device: torch.device) -> list[int]:
    """Every rank's ``rows``, in rank order (``[rows]`` in one process)."""
    world_size = _world_size()
    if world_size == 1:
        return [rows]
    count = torch.tensor([rows], dtype=torch.int64, device=device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    return [int(value) for value in counts]


def _gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """The rows ``(n_r, D)`` of every rank concatenated in rank order (``rows`` itself in one
    process); the ranks may hold different numbers of rows."""
    counts = _row_counts(rows.shape[0], rows.device)
    if len(counts) == 1:
        return rows
    padded = F.pad(rows, (0, 0, 0, max(counts) - rows.shape[0])).contiguous()
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:count] for part, count in zip(parts, counts)])


class ResidualVectorQuantizer(nn.Module):
    """Residual vector quantizer with EMA codebooks (SoundStream Alg. 1; see the module doc).

    Args:
        dim: size ``D`` of the vectors to quantize (the codec's latent dimension).
        num_levels: ``Q``, the number of residual levels (12 in AudioLM's SoundStream).
        codebook_size: ``K`` codewords per level (1024 in AudioLM's SoundStream).
        decay: EMA decay ``g`` of the cluster counts and sums (0.99).
        epsilon: Laplace smoothing ``eps`` of the cluster counts (1e-5, as VQ-VAE's Sonnet
            ``VectorQuantizerEMA``).
        commitment_weight: ``beta`` of the commitment loss (1.0).
        kmeans_init: set the codebooks by k-means on the first training batch (True);
            otherwise they start as standard normal draws.
        kmeans_iterations: Lloyd iterations of that initialization (10, as
            vector-quantize-pytorch's ``kmeans_iters``).
        dead_code_threshold: codes whose EMA count falls below it are replaced by batch
            vectors (2.0); 0 disables the replacement.
        quantizer_dropout: draw ``n_q ~ U{1..Q}`` per training batch when ``levels`` is not
            given (True).
        generator: CPU (or same-device) ``torch.Generator`` for the k-means seeds, the
            replacement vectors and the dropout draws; None uses torch's global generator
            (seeded by :func:`lutece.train.seed_everything`).

    Buffers: ``codebooks (Q, K, D)``, ``cluster_size (Q, K)`` (``N``), ``embed_sum (Q, K, D)``
    (``m``) and ``initialized`` (whether k-means has run, or codebooks were set).
    """

    def __init__(self, dim: int, num_levels: int = 12, codebook_size: int = 1024, *,
                 decay: float = 0.99, epsilon: float = 1e-5, commitment_weight: float = 1.0,
                 kmeans_init: bool = True, kmeans_iterations: int = 10,
                 dead_code_threshold: float = 2.0, quantizer_dropout: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        fn = "ResidualVectorQuantizer"
        self.dim = check_int(fn, "dim", dim)
        self.num_levels = check_int(fn, "num_levels", num_levels)
        self.codebook_size = check_int(fn, "codebook_size", codebook_size)
        self.kmeans_iterations = check_int(fn, "kmeans_iterations", kmeans_iterations)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"{fn}: decay must be in [0, 1), got {decay}")
        if not epsilon > 0:
            raise ValueError(f"{fn}: epsilon must be > 0, got {epsilon}")
        if not (commitment_weight >= 0 and math.isfinite(commitment_weight)):
            raise ValueError(f"{fn}: commitment_weight must be >= 0, got {commitment_weight}")
        if not (dead_code_threshold >= 0 and math.isfinite(dead_code_threshold)):
            raise ValueError(
                f"{fn}: dead_code_threshold must be >= 0 (0 disables), got {dead_code_threshold}"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{fn}: generator must be a torch.Generator or None, "
                            f"got {type(generator).__name__}")
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        self.commitment_weight = float(commitment_weight)
        self.kmeans_init = bool(kmeans_init)
        self.dead_code_threshold = float(dead_code_threshold)
        self.quantizer_dropout = bool(quantizer_dropout)
        self.generator = generator
        shape = (self.num_levels, self.codebook_size)
        self.register_buffer("codebooks", torch.empty(*shape, self.dim))
        self.register_buffer("cluster_size", torch.empty(shape))
        self.register_buffer("embed_sum", torch.empty(*shape, self.dim))
        self.register_buffer("initialized", torch.tensor(False))
        self.reset_parameters()

    # ----------------------------------------------------------------------------- state
    def reset_parameters(self) -> None:
        """Standard normal codebooks with unit counts; k-means (if on) runs again."""
        with torch.no_grad():
            draws = torch.randn(self.codebooks.shape, generator=self.generator,
                                device=self._random_device())
            self.codebooks.copy_(draws)
            self.cluster_size.fill_(1.0)
            self.embed_sum.copy_(self.codebooks)
            self.initialized.fill_(not self.kmeans_init)

    @torch.no_grad()
    def set_codebooks(self, codebooks: torch.Tensor,
                      cluster_size: float | None = None) -> None:
        """Use ``codebooks`` ``(num_levels, codebook_size, dim)`` as they are (k-means is
        then skipped). The EMA state is made consistent with them: ``N_k = cluster_size``
        (default ``max(1, dead_code_threshold)``, so no code is dead at once) and
        ``m_k = N_k c_k``."""
        fn = "ResidualVectorQuantizer.set_codebooks"
        check_tensor(fn, "codebooks", codebooks)
        expected = (self.num_levels, self.codebook_size, self.dim)
        if tuple(codebooks.shape) != expected:
            raise ValueError(f"{fn}: codebooks must have shape (num_levels, codebook_size, "
                             f"dim) = {expected}, got {tuple(codebooks.shape)}")
        check_finite(fn, "codebooks", check_floating(fn, "codebooks", codebooks))
        size = max(1.0, self.dead_code_threshold) if cluster_size is None else cluster_size
        if not size > 0:
            raise ValueError(f"{fn}: cluster_size must be > 0, got {size}")
        self.codebooks.copy_(codebooks)
        self.cluster_size.fill_(float(size))
        self.embed_sum.copy_(self.codebooks * float(size))
        self.initialized.fill_(True)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_levels={self.num_levels}, "
                f"codebook_size={self.codebook_size}, decay={self.decay}, "
                f"commitment_weight={self.commitment_weight}, kmeans_init={self.kmeans_init}, "
                f"dead_code_threshold={self.dead_code_threshold}, "
                f"quantizer_dropout={self.quantizer_dropout}")

    # ------------------------------------------------------------------------ checks
    def _check_input(self, fn: str, x: object) -> torch.Tensor:
        check_tensor(fn, "x", x)
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"{fn}: x must have shape (batch, frames, dim={self.dim}), "
                             f"got {tuple(x.shape)}")
        check_floating(fn, "x", x)
        return check_finite(fn, "x", x)

    def _check_levels(self, fn: str, levels: object, available: int) -> int:
        if isinstance(levels, bool) or not isinstance(levels, int):
            raise TypeError(f"{fn}: levels must be an int or None, got {type(levels).__name__}")
        if not 1 <= levels <= available:
            raise ValueError(f"{fn}: levels must be in 1..{available}, got {levels}")
        return levels

    def _random_device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device("cpu")

    def draw_levels(self) -> int:
        """One quantizer-dropout draw, ``n_q ~ U{1, ..., num_levels}``."""
        return int(torch.randint(1, self.num_levels + 1, (1,), generator=self.generator,
                                 device=self._random_device()))

    # ----------------------------------------------------------------------- training
    def _kmeans(self, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lloyd's k-means on ``data (n, D)``: ``(centroids (K, D), counts (K,))``. Seeds are
        K distinct random rows (with repetition when n < K); an empty cluster keeps its
        previous centroid."""
        n, size = data.shape[0], self.codebook_size
        device = self._random_device()
        if n >= size:
            start = torch.randperm(n, generator=self.generator, device=device)[:size]
        else:
            start = torch.randint(n, (size,), generator=self.generator, device=device)
        centroids = data[start.to(data.device)].clone()
        for _ in range(self.kmeans_iterations):
            assignment = _nearest(data, centroids)
            counts = torch.bincount(assignment, minlength=size).to(data.dtype)
            sums = torch.zeros_like(centroids).index_add_(0, assignment, data)
            centroids = torch.where(counts[:, None] > 0,
                                    sums / counts.clamp(min=1.0)[:, None], centroids)
        counts = torch.bincount(_nearest(data, centroids), minlength=size).to(data.dtype)
        return centroids, counts

    @torch.no_grad()
    def _initialize(self, flat: torch.Tensor) -> None:
        """k-means on each level's residuals of the first batch ``flat (n, D)``; under
        ``torch.distributed`` of every rank's first batch (gathered in rank order), and rank
        0's result is then broadcast, so the ranks agree whatever their generators."""
        residual = _gather_rows(flat.to(self.codebooks.dtype))
        for level in range(self.num_levels):
            centroids, counts = self._kmeans(residual)
            self.codebooks[level].copy_(centroids)
            self.cluster_size[level].copy_(counts)
            self.embed_sum[level].copy_(centroids * counts[:, None])
            residual = residual - centroids[_nearest(residual, centroids)]
        for buffer in (self.codebooks, self.cluster_size, self.embed_sum):
            _broadcast(buffer)
        self.initialized.fill_(True)

    def _replacements(self, residual: torch.Tensor, count: int) -> torch.Tensor:
        """``count`` rows drawn uniformly (with repetition) from the residuals ``(n, D)`` of
        this batch. Under ``torch.distributed`` they are drawn from the rows of all ranks in
        rank order: rank 0's draw of the row indices is broadcast and each row comes from the
        rank that holds it (a sum over ranks of masked rows), so every rank gets the same
        vectors."""
        counts = _row_counts(residual.shape[0], residual.device)
        picks = torch.randint(sum(counts), (count,), generator=self.generator,
                              device=self._random_device()).to(residual.device)
        if len(counts) == 1:
            return residual[picks]
        local = _broadcast(picks) - sum(counts[:dist.get_rank()])
        mine = (local >= 0) & (local < residual.shape[0])
        rows = torch.zeros(count, residual.shape[1], dtype=residual.dtype,
                           device=residual.device)
        rows[mine] = residual[local[mine]]
        return _all_reduce(rows)

    def _shared_levels(self, levels: int) -> int:
        """Rank 0's quantizer-dropout draw on every rank: each level's EMA update is a
        collective, so all ranks must use the same number of levels."""
        if _world_size() == 1:
            return levels
        return int(_broadcast(torch.tensor([levels], device=self.codebooks.device)))

    @torch.no_grad()
    def _ema_update(self, level: int, residual: torch.Tensor, codes: torch.Tensor,
                    counts: torch.Tensor) -> None:
        """VQ-VAE's EMA step for one level, then dead-code replacement."""
        sums = torch.zeros_like(self.embed_sum[level]).index_add_(
            0, codes, residual.to(self.embed_sum.dtype))
        counts = _all_reduce(counts.to(self.cluster_size.dtype).clone())
        sums = _all_reduce(sums)
        cluster_size, embed_sum = self.cluster_size[level], self.embed_sum[level]
        cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        total = cluster_size.sum()
        smoothed = (cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon)
        self.codebooks[level].copy_(embed_sum / (smoothed * total)[:, None])
        if self.dead_code_threshold > 0:
            dead = cluster_size < self.dead_code_threshold
            num_dead = int(dead.sum())
            if num_dead:  # the same on every rank: the counts above are all-reduced
                fresh = self._replacements(residual, num_dead).to(self.codebooks.dtype)
                self.codebooks[level][dead] = fresh
                cluster_size[dead] = self.dead_code_threshold
                embed_sum[dead] = fresh * self.dead_code_threshold

    # ---------------------------------------------------------------------- public API
    def forward(self, x: torch.Tensor, levels: int | None = None) -> QuantizerOutput:
        """Quantize ``x (batch, frames, dim)`` with the first ``levels`` levels.

        ``levels=None`` uses all levels, except in training with ``quantizer_dropout`` where
        ``n_q ~ U{1..num_levels}`` is drawn for this batch. In training mode the codebooks
        are updated (k-means on the first batch, EMA, dead codes) from this batch; the output
        is computed with the codebooks as they were before this batch's update.
        """
        fn = "ResidualVectorQuantizer.forward"
        x = self._check_input(fn, x)
        if levels is None:
            levels = (self._shared_levels(self.draw_levels())
                      if self.training and self.quantizer_dropout else self.num_levels)
        else:
            levels = self._check_levels(fn, levels, self.num_levels)
        batch, frames, _ = x.shape
        compute_dtype = torch.promote_types(x.dtype, self.codebooks.dtype)
        flat = x.reshape(-1, self.dim).to(compute_dtype)
        if self.training and not bool(self.initialized):
            self._initialize(flat.detach())
        residual = flat
        quantized = torch.zeros_like(flat)
        codes, losses, perplexity, usage = [], [], [], []
        for level in range(levels):
            codebook = self.codebooks[level].to(compute_dtype)
            level_codes = _nearest(residual.detach(), codebook)
            codeword = F.embedding(level_codes, codebook)  # a copy: safe from the update below
            losses.append(F.mse_loss(residual, codeword))  # codeword carries no gradient
            counts = torch.bincount(level_codes, minlength=self.codebook_size).to(flat.dtype)
            probabilities = counts / counts.sum()
            entropy = -(probabilities * torch.log(probabilities.clamp(min=1e-30))).sum()
            perplexity.append(entropy.exp())
            usage.append((counts > 0).to(flat.dtype).mean())
            if self.training:
                self._ema_update(level, residual.detach(), level_codes, counts)
            quantized = quantized + codeword
            residual = residual - codeword
            codes.append(level_codes)
        level_losses = torch.stack(losses)
        straight_through = flat + (quantized - flat).detach()
        return QuantizerOutput(
            quantized=straight_through.reshape(batch, frames, self.dim).to(x.dtype),
            codes=torch.stack(codes, dim=-1).reshape(batch, frames, levels),
            commitment_loss=self.commitment_weight * level_losses.mean(),
            level_losses=level_losses,
            perplexity=torch.stack(perplexity),
            usage=torch.stack(usage),
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Codes ``(batch, frames, levels)`` int64 of ``x (batch, frames, dim)``, with all
        levels by default. Never updates the codebooks."""
        fn = "ResidualVectorQuantizer.encode"
        x = self._check_input(fn, x)
        levels = self.num_levels if levels is None else self._check_levels(fn, levels,
                                                                           self.num_levels)
        compute_dtype = torch.promote_types(x.dtype, self.codebooks.dtype)
        residual = x.reshape(-1, self.dim).to(compute_dtype)
        codes = []
        for level in range(levels):
            codebook = self.codebooks[level].to(compute_dtype)
            level_codes = _nearest(residual, codebook)
            residual = residual - codebook[level_codes]
            codes.append(level_codes)
        return torch.stack(codes, dim=-1).reshape(x.shape[0], x.shape[1], levels)

    def decode(self, codes: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """``x_hat = sum_{l < levels} c_{l, codes[..., l]}``: ``(batch, frames, dim)`` in the
        codebooks' dtype. ``codes (batch, frames, L)`` with ``1 <= L <= num_levels``;
        ``levels`` defaults to ``L`` (bitrate-scalable decoding uses fewer)."""
        fn = "ResidualVectorQuantizer.decode"
        check_tensor(fn, "codes", codes)
        if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
            raise TypeError(f"{fn}: codes must have an integer dtype, got {codes.dtype}")
        if codes.ndim != 3 or not 1 <= codes.shape[-1] <= self.num_levels:
            raise ValueError(f"{fn}: codes must have shape (batch, frames, levels) with "
                             f"1 <= levels <= {self.num_levels}, got {tuple(codes.shape)}")
        levels = codes.shape[-1] if levels is None else self._check_levels(fn, levels,
                                                                           codes.shape[-1])
        if codes.numel():
            low, high = int(codes.min()), int(codes.max())
            if low < 0 or high >= self.codebook_size:
                raise ValueError(f"{fn}: codes must be in [0, {self.codebook_size}), got "
                                 f"values in [{low}, {high}]")
        codes = codes[..., :levels].long()
        quantized = torch.zeros(*codes.shape[:2], self.dim, dtype=self.codebooks.dtype,
                                device=self.codebooks.device)
        for level in range(levels):
            quantized = quantized + F.embedding(codes[..., level], self.codebooks[level])
        return quantized
