"""AudioLM's three token models: a decoder-only causal Transformer with a KV cache, the token
layouts that put several token streams in one vocabulary, and the semantic, coarse acoustic
and fine acoustic stages.

Borsos et al., "AudioLM: a Language Modeling Approach to Audio Generation" (2022,
arXiv 2209.03143), Sec. III-C (hierarchical modeling) and Sec. IV (training setup). With
semantic tokens ``z_t`` (``K`` ids, 25 Hz) and SoundStream codes ``y_t^q`` (``Q`` levels of
``N`` ids, 50 Hz), AudioLM factorizes ``p(z, y)`` into three autoregressive models:

1. **Semantic** :class:`SemanticStage`: ``p(z_t | z_<t)``, on the semantic tokens with
   consecutive repetitions removed (Sec. IV: "we remove consecutive repetitions").
   Sequence: ``[BOS, z_1, ..., z_T']`` (``T' <= T`` after de-duplication).
2. **Coarse acoustic** :class:`CoarseStage`: ``p(y_t^q | z, y_<t^{<=Q'}, y_t^{<q})`` for the
   first ``Q'`` levels (``Q' = 4`` of ``Q = 12``), conditioned on all semantic tokens, kept
   *with* their repetitions so that they stay aligned with the acoustic frames.
   Sequence: ``[z_1, ..., z_T, SEP, y_1^1, ..., y_1^Q', y_2^1, ...]``. An option of ours
   (``layout="interleaved"``) also repeats ``z_t`` right before its ``r`` frames after SEP,
   as given tokens, so that a small model trained on little data finds the token each frame
   renders at a fixed distance instead of learning the alignment.
3. **Fine acoustic** :class:`FineStage`: ``p(y_t^q | y^{<=Q'}, y_<t^{>Q'}, y_t^{<q})`` for
   levels ``Q'+1 .. Q``, conditioned on the coarse levels only (no semantic token ever
   enters it), on non-overlapping chunks (3 s in the paper).
   Sequence per chunk: ``[y_1^1, ..., y_C^Q', SEP, y_1^{Q'+1}, ..., y_C^Q]``.

**Flattening with offsets** (Sec. III-C; audiolm-pytorch uses the same offsets): a code matrix
``(frames, Q)`` is read row-major, frame by frame, and level ``q`` (0-based) is shifted by
``q N``, so every level owns its id range ``[q N, (q + 1) N)`` (:func:`flatten_codes`). In the
coarse stage the acoustic ids are further shifted by ``K``, after the semantic ids. The special
tokens (``BOS``, ``SEP``, ``EOS``) take the three ids after all real ids (:class:`SpecialTokens`);
batches of unequal length are right-padded with ``EOS`` and the padding is never a target.

**Rates** (AudioLM: 25 Hz semantic, 50 Hz acoustic): ``acoustic frames = r x semantic frames``
with ``r = acoustic frame rate / semantic frame rate`` a positive integer (checked by
:class:`~lutece.audio.lm.audiolm.AudioLM`), so a semantic token corresponds to ``r Q'`` coarse
and ``r (Q - Q')`` fine tokens. The coarse stage checks this on every sequence it builds.

**Transformer** (:class:`CausalTransformer`): pre-norm blocks (Xiong et al., 2020, "On Layer
Normalization in the Transformer Architecture"; GPT-2), multi-head causal self-attention and a
GELU feed-forward; positions are rotary (Su et al., 2021, RoFormer, arXiv 2104.09864; a
relative scheme like the paper's T5 relative bias) or learned absolute embeddings. Decoding
keeps an explicit :class:`KVCache` of every layer's keys and values, so each new token costs
one position instead of the whole prefix. The paper's stages are 12 layers, 16 heads,
``d = 1024``, FFN 4096, dropout 0.1 (:class:`TransformerConfig` defaults). Sampling
(:func:`sample_logits`) uses a temperature and optional top-k (Fan et al., 2018,
"Hierarchical Neural Story Generation"); temperature 0 is greedy. Each generated position is
restricted to the id range of the token it must be (the right RVQ level, or a semantic id),
so a generated sequence always unflattens.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..._validation import check_floating, check_int, check_tensor
from ...train import atomic_save, load_tagged

__all__ = ["TransformerConfig", "CausalTransformer", "KVCache", "sample_logits",
           "flatten_codes", "unflatten_codes", "SpecialTokens",
           "TokenSequence", "SemanticStageConfig", "CoarseStageConfig", "FineStageConfig",
           "SemanticStage", "CoarseStage", "FineStage", "stage_loss", "STAGE_FORMAT"]

STAGE_FORMAT = "lutece.audio.lm.stage/1"
_IGNORE = -100


# ------------------------------------------------------------------------- validation
def _check_ids(fn: str, name: str, value: object, *, ndim: int, high: int,
               low: int = 0, what: str = "ids") -> torch.Tensor:
    """An integer tensor with ``ndim`` dimensions and values in ``[low, high)``; int64."""
    check_tensor(fn, name, value)
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must have an integer dtype, got {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be a {ndim}-d tensor, got shape "
                         f"{tuple(value.shape)}")
    if value.numel():
        smallest, largest = int(value.min()), int(value.max())
        if smallest < low or largest >= high:
            raise ValueError(f"{fn}: {name} must hold {what} in [{low}, {high}), got values "
                             f"in [{smallest}, {largest}]")
    return value.long()


def _check_sampling(fn: str, temperature: object, top_k: object) -> tuple[float, int | None]:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"{fn}: temperature must be a finite float >= 0 (0 is greedy), "
                         f"got {temperature!r}")
    if top_k is not None:
        check_int(fn, "top_k", top_k)
    return float(temperature), top_k


# ------------------------------------------------------------------------ transformer
@dataclass
class TransformerConfig:
    """The architecture of a :class:`CausalTransformer` (its vocabulary comes from its stage).

    Defaults are AudioLM's (Sec. IV, per the research notes): 12 layers, 16 heads,
    ``d = 1024``, FFN 4096 (``4 d``), dropout 0.1. The paper uses T5 relative position
    biases; here positions are rotary (relative too) or learned.

    Attributes:
        dim: model width ``d``.
        num_layers: pre-norm blocks.
        num_heads: attention heads; ``dim`` must be a multiple (and ``dim / num_heads`` even
            for rotary positions).
        ffn_dim: hidden width of the feed-forward; None -> ``4 * dim``.
        dropout: on embeddings, attention weights and residual branches (training only).
        max_length: the most tokens one sequence may hold (prefix + generated).
        positions: ``"rotary"`` or ``"learned"``.
        rotary_base: the base ``b`` of the rotary frequencies ``b^(-2i/d_head)`` (10000).
    """

    dim: int = 1024
    num_layers: int = 12
    num_heads: int = 16
    ffn_dim: int | None = None
    dropout: float = 0.1
    max_length: int = 2048
    positions: str = "rotary"
    rotary_base: float = 10000.0

    def __post_init__(self) -> None:
        fn = "TransformerConfig"
        for name in ("dim", "num_layers", "num_heads", "max_length"):
            check_int(fn, name, getattr(self, name))
        if self.ffn_dim is not None:
            check_int(fn, "ffn_dim", self.ffn_dim)
        if self.dim % self.num_heads:
            raise ValueError(f"{fn}: dim ({self.dim}) must be a multiple of num_heads "
                             f"({self.num_heads})")
        if self.positions not in ("rotary", "learned"):
            raise ValueError(f"{fn}: positions must be 'rotary' or 'learned', "
                             f"got {self.positions!r}")
        if self.positions == "rotary" and (self.dim // self.num_heads) % 2:
            raise ValueError(f"{fn}: rotary positions need an even head width, got dim / "
                             f"num_heads = {self.dim // self.num_heads}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"{fn}: dropout must be in [0, 1), got {self.dropout}")
        if not self.rotary_base > 1:
            raise ValueError(f"{fn}: rotary_base must be > 1, got {self.rotary_base}")

    @property
    def hidden_dim(self) -> int:
        """The feed-forward width (``ffn_dim`` or ``4 * dim``)."""
        return self.ffn_dim if self.ffn_dim is not None else 4 * self.dim


class KVCache:
    """The keys and values of every position a :class:`CausalTransformer` has seen, per layer.

    Each layer holds ``(batch, heads, capacity, head_dim)`` buffers of which the first
    :attr:`length` positions are filled; capacity doubles when full (amortized O(1) per token).
    :meth:`CausalTransformer.forward` appends to it in place and returns it. Inference only:
    do not backpropagate through a cached pass.
    """

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"KVCache(length={self.length}, layers={len(self.keys)})"

    @property
    def batch_size(self) -> int | None:
        """Rows of the cached sequences (None while empty)."""
        return self.keys[0].shape[0] if self.keys else None

    def _append(self, layer: int, keys: torch.Tensor, values: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``keys, values (batch, heads, n, head_dim)`` at positions
        ``[length, length + n)`` of ``layer``; return the layer's keys and values so far."""
        end = self.length + keys.shape[2]
        if layer == len(self.keys):  # first pass: keep the tensors, no copy
            self.keys.append(keys)
            self.values.append(values)
            return keys, values
        for store in (self.keys, self.values):
            buffer = store[layer]
            if buffer.shape[2] < end:
                grown = buffer.new_empty(*buffer.shape[:2], max(end, 2 * buffer.shape[2]),
                                         buffer.shape[3])
                grown[:, :, :self.length] = buffer[:, :, :self.length]
                store[layer] = grown
        self.keys[layer][:, :, self.length:end] = keys
        self.values[layer][:, :, self.length:end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (RoFormer Eq. 34, "rotate half" pairing): ``(x1, x2)`` ->
    ``(x1 cos - x2 sin, x1 sin + x2 cos)`` on the two halves of the head dimension."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class _Attention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)

    def forward(self, x: torch.Tensor, cache: KVCache, layer: int, offset: int,
                rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        batch, n, dim = x.shape
        q, k, v = self.qkv(x).view(batch, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if rotary is not None:
            q, k = _rotate(q, *rotary), _rotate(k, *rotary)
        k, v = cache._append(layer, k, v)
        # query i (absolute position offset + i) sees keys 0 .. offset + i
        mask = None
        if n > 1 and offset > 0:
            mask = torch.ones(n, offset + n, dtype=torch.bool, device=x.device).tril(offset)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=n > 1 and offset == 0,
            dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, n, dim))


class _Block(nn.Module):
    """Pre-norm block: ``x + attn(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.dim)
        self.attention = _Attention(config)
        self.ffn_norm = nn.LayerNorm(config.dim)
        self.ffn = nn.Sequential(nn.Linear(config.dim, config.hidden_dim), nn.GELU(),
                                 nn.Linear(config.hidden_dim, config.dim))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache, layer: int, offset: int,
                rotary: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), cache, layer, offset,
                                            rotary))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class CausalTransformer(nn.Module):
    """A decoder-only causal Transformer over ``vocab_size`` token ids.

    ``forward(tokens (batch, n), cache=None) -> (logits (batch, n, vocab_size), cache)``:
    position ``i`` of ``tokens`` sits at absolute position ``len(cache) + i`` and attends to
    every earlier position, cached or not. Feeding a sequence in one pass (teacher forcing) or
    one token at a time through the same cache gives the same logits up to float rounding.
    """

    def __init__(self, vocab_size: int, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.vocab_size = check_int("CausalTransformer", "vocab_size", vocab_size)
        self.config = config if config is not None else TransformerConfig()
        if not isinstance(self.config, TransformerConfig):
            raise TypeError(f"CausalTransformer: config must be a TransformerConfig, "
                            f"got {type(self.config).__name__}")
        cfg = self.config
        self.token_embedding = nn.Embedding(vocab_size, cfg.dim)
        self.position_embedding = (nn.Embedding(cfg.max_length, cfg.dim)
                                   if cfg.positions == "learned" else None)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialization: N(0, 0.02) embeddings and linear weights, zero biases."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"vocab_size={self.vocab_size}, dim={cfg.dim}, layers={cfg.num_layers}, "
                f"heads={cfg.num_heads}, max_length={cfg.max_length}, "
                f"positions={cfg.positions!r}")

    def _rotary(self, offset: int, n: int, dtype: torch.dtype, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin (n, head_dim / 2)`` of positions ``offset .. offset + n - 1``, computed
        in float64 so a position gets the same angles in any pass."""
        head_dim = self.config.dim // self.config.num_heads
        frequencies = self.config.rotary_base ** (
            -torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
        positions = torch.arange(offset, offset + n, dtype=torch.float64, device=device)
        angles = positions[:, None] * frequencies[None]
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def forward(self, tokens: torch.Tensor, cache: KVCache | None = None
                ) -> tuple[torch.Tensor, KVCache]:
        """Logits ``(batch, n, vocab_size)`` of the next token after each of ``tokens
        (batch, n)`` (int, ids in ``[0, vocab_size)``), continuing the sequence held by
        ``cache`` (a new one when None); returns the cache, updated in place."""
        fn = "CausalTransformer.forward"
        tokens = _check_ids(fn, "tokens", tokens, ndim=2, high=self.vocab_size,
                            what="token ids")
        batch, n = tokens.shape
        if n == 0:
            raise ValueError(f"{fn}: tokens must hold at least one position, got shape "
                             f"{tuple(tokens.shape)}")
        if cache is None:
            cache = KVCache()
        elif not isinstance(cache, KVCache):
            raise TypeError(f"{fn}: cache must be a KVCache or None, got "
                            f"{type(cache).__name__}")
        elif cache.batch_size is not None and cache.batch_size != batch:
            raise ValueError(f"{fn}: the cache holds {cache.batch_size} sequence(s) but tokens "
                             f"has batch size {batch}")
        if cache.length + n > self.config.max_length:
            raise ValueError(f"{fn}: the sequence would hold {cache.length + n} tokens "
                             f"({cache.length} cached + {n} new), more than this model's "
                             f"max_length={self.config.max_length}")
        return self._forward(tokens, cache)

    def _forward(self, tokens: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        """:meth:`forward` without the checks (for the sampling loop)."""
        offset, n = cache.length, tokens.shape[1]
        x = self.token_embedding(tokens)
        if self.position_embedding is not None:
            x = x + self.position_embedding.weight[offset:offset + n]
        x = self.dropout(x)
        rotary = (self._rotary(offset, n, x.dtype, x.device)
                  if self.position_embedding is None else None)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, offset, rotary)
        cache.length = offset + n
        return self.head(self.norm(x)), cache

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, ranges: torch.Tensor, *,
                 temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None,
                 use_cache: bool = True, forced: torch.Tensor | None = None) -> torch.Tensor:
        """Sample ``len(ranges)`` tokens after ``prefix (batch, P)``; the ``i``-th new token is
        restricted to ids in ``[ranges[i, 0], ranges[i, 1])``. ``forced (batch,
        len(ranges))``, when given, holds ids that are fed instead of sampled where they are
        ``>= 0`` (-1: sample), e.g. the semantic tokens of an interleaved coarse sequence.
        Returns ``(batch, len(ranges))`` int64. Runs in eval mode (dropout off) and restores
        the previous mode. Without the cache every step re-reads the whole sequence (the same
        result, slower)."""
        fn = "CausalTransformer.generate"
        prefix = _check_ids(fn, "prefix", prefix, ndim=2, high=self.vocab_size,
                            what="token ids")
        temperature, top_k = _check_sampling(fn, temperature, top_k)
        ranges = _check_ids(fn, "ranges", ranges, ndim=2, high=self.vocab_size + 1)
        if ranges.shape[-1] != 2 or bool((ranges[:, 0] >= ranges[:, 1]).any()):
            raise ValueError(f"{fn}: ranges must be (num_tokens, 2) rows [low, high) with "
                             f"low < high")
        batch, length = prefix.shape
        num_tokens = ranges.shape[0]
        if forced is not None:
            forced = _check_ids(fn, "forced", forced, ndim=2, high=self.vocab_size, low=-1)
            if forced.shape != (batch, num_tokens):
                raise ValueError(f"{fn}: forced must have shape (batch, num_tokens) = "
                                 f"{(batch, num_tokens)}, got {tuple(forced.shape)}")
            given = forced >= 0
            if bool((given.any(0) & ~given.all(0)).any()):
                raise ValueError(f"{fn}: each column of forced must be forced in every row or "
                                 f"in none (-1 everywhere)")
            outside = given & ((forced < ranges[:, 0]) | (forced >= ranges[:, 1]))
            if bool(outside.any()):
                raise ValueError(f"{fn}: forced ids must lie in their position's range")
        if length == 0:
            raise ValueError(f"{fn}: prefix must hold at least one token (e.g. BOS)")
        if length + num_tokens > self.config.max_length:
            raise ValueError(f"{fn}: prefix ({length}) + generated ({num_tokens}) tokens exceed "
                             f"this model's max_length={self.config.max_length}")
        out = prefix.new_empty(batch, num_tokens)
        if num_tokens == 0:
            return out
        ids = torch.arange(self.vocab_size, device=prefix.device)
        was_training = self.training
        self.eval()
        try:
            logits, cache = self._forward(prefix, KVCache())
            free = None if forced is None else (forced < 0).all(0).tolist()
            for step, (low, high) in enumerate(ranges.tolist()):
                if free is None or free[step]:
                    last = logits[:, -1].masked_fill((ids < low) | (ids >= high), -math.inf)
                    out[:, step] = _sample(last, temperature, top_k, generator)
                else:
                    out[:, step] = forced[:, step]
                if step + 1 < num_tokens:
                    if use_cache:
                        logits, cache = self._forward(out[:, step:step + 1], cache)
                    else:
                        logits, _ = self._forward(torch.cat((prefix, out[:, :step + 1]), dim=1),
                                                  KVCache())
        finally:
            self.train(was_training)
        return out


def sample_logits(logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one id per row of ``logits (..., vocab)`` from ``softmax(logits / temperature)``
    restricted to the ``top_k`` largest logits (all when None); ``temperature = 0`` is the
    argmax (greedy). ``-inf`` logits are never drawn. Returns ``(...)`` int64.

    Top-k sampling: Fan et al., 2018, "Hierarchical Neural Story Generation". The draw uses
    ``generator`` (global RNG when None)."""
    fn = "sample_logits"
    check_tensor(fn, "logits", logits, min_ndim=1)
    check_floating(fn, "logits", logits)
    temperature, top_k = _check_sampling(fn, temperature, top_k)
    return _sample(logits, temperature, top_k, generator)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None,
            generator: torch.Generator | None) -> torch.Tensor:
    """:func:`sample_logits` without the argument checks."""
    fn = "sample_logits"
    shape = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    if temperature == 0:
        return flat.argmax(-1).reshape(shape)
    if top_k is not None and top_k < flat.shape[-1]:
        kept = flat.topk(top_k, dim=-1).indices
        flat = torch.full_like(flat, -math.inf).scatter(-1, kept, flat.gather(-1, kept))
    probabilities = torch.softmax(flat.double() / temperature, dim=-1)
    if not bool(torch.isfinite(probabilities).all()):
        raise ValueError(f"{fn}: logits must hold a finite value in every row, got a row of "
                         f"NaN or all -inf")
    return torch.multinomial(probabilities, 1, generator=generator).reshape(shape)


# ----------------------------------------------------------------------------- layouts
def flatten_codes(codes: torch.Tensor, codebook_size: int, first_level: int = 0
                  ) -> torch.Tensor:
    """Row-major flattening with per-level offsets (AudioLM Sec. III-C): ``codes (batch,
    frames, Q)`` -> ids ``(batch, frames * Q)`` with ``ids[b, t Q + j] = codes[b, t, j] +
    (first_level + j) * codebook_size``: frame ``t``'s levels in order, then frame ``t + 1``.
    ``first_level`` is the absolute level of ``codes[..., 0]`` (``Q'`` for fine levels)."""
    fn = "flatten_codes"
    check_int(fn, "codebook_size", codebook_size)
    if isinstance(first_level, bool) or not isinstance(first_level, int) or first_level < 0:
        raise ValueError(f"{fn}: first_level must be an int >= 0, got {first_level!r}")
    codes = _check_ids(fn, "codes", codes, ndim=3, high=codebook_size, what="codes")
    batch, frames, levels = codes.shape
    offsets = (first_level + torch.arange(levels, device=codes.device)) * codebook_size
    return (codes + offsets).reshape(batch, frames * levels)


def unflatten_codes(ids: torch.Tensor, codebook_size: int, num_levels: int,
                    first_level: int = 0) -> torch.Tensor:
    """The inverse of :func:`flatten_codes`: ids ``(batch, frames * num_levels)`` -> codes
    ``(batch, frames, num_levels)``. Every id must lie in its level's range
    ``[(first_level + j) N, (first_level + j + 1) N)``."""
    fn = "unflatten_codes"
    check_int(fn, "codebook_size", codebook_size)
    check_int(fn, "num_levels", num_levels)
    if isinstance(first_level, bool) or not isinstance(first_level, int) or first_level < 0:
        raise ValueError(f"{fn}: first_level must be an int >= 0, got {first_level!r}")
    ids = _check_ids(fn, "ids", ids, ndim=2,
                     high=(first_level + num_levels) * codebook_size,
                     low=first_level * codebook_size)
    batch, length = ids.shape
    if length % num_levels:
        raise ValueError(f"{fn}: ids has {length} positions, not a multiple of num_levels="
                         f"{num_levels}")
    grid = ids.reshape(batch, length // num_levels, num_levels)
    levels = first_level + torch.arange(num_levels, device=ids.device)
    wrong = grid // codebook_size != levels
    if bool(wrong.any()):
        b, t, j = (int(i) for i in wrong.nonzero()[0])
        raise ValueError(f"{fn}: ids[{b}, {t * num_levels + j}] = {int(grid[b, t, j])} is not "
                         f"an id of level {first_level + j} (range "
                         f"[{(first_level + j) * codebook_size}, "
                         f"{(first_level + j + 1) * codebook_size}))")
    return grid - levels * codebook_size


@dataclass(frozen=True)
class SpecialTokens:
    """The ids of the special tokens, placed after the ``num_real`` real ids:
    ``bos = num_real``, ``separator = num_real + 1`` (between conditioning and target),
    ``eos = num_real + 2`` (also the right padding, never a target)."""

    num_real: int

    @property
    def bos(self) -> int:
        return self.num_real

    @property
    def separator(self) -> int:
        return self.num_real + 1

    @property
    def eos(self) -> int:
        return self.num_real + 2

    @property
    def vocab_size(self) -> int:
        """Real ids + the three special ids."""
        return self.num_real + 3


@dataclass(frozen=True)
class TokenSequence:
    """A batch of stage sequences.

    Attributes:
        ids: ``(batch, length)`` int64, one vocabulary per stage.
        loss_mask: ``(batch, length)`` bool, True where the token is a training target
            (predicted from the positions before it); conditioning and padding are False.
    """

    ids: torch.Tensor
    loss_mask: torch.Tensor


def _stack_rows(rows: Sequence[tuple[torch.Tensor, torch.Tensor]], pad: int) -> TokenSequence:
    """Right-pad 1-d ``(ids, loss_mask)`` rows with ``pad`` (masked out) and stack them."""
    length = max(ids.shape[0] for ids, _ in rows)
    ids = torch.stack([F.pad(ids, (0, length - ids.shape[0]), value=pad) for ids, _ in rows])
    mask = torch.stack([F.pad(mask, (0, length - mask.shape[0]), value=False)
                        for _, mask in rows])
    return TokenSequence(ids, mask)


def _level_ranges(frames: int, first_level: int, num_levels: int, codebook_size: int,
                  offset: int, device: torch.device) -> torch.Tensor:
    """``(frames * num_levels, 2)`` id ranges of flattened codes, level by level per frame."""
    levels = (first_level + torch.arange(num_levels, device=device)).repeat(frames)
    low = offset + levels * codebook_size
    return torch.stack((low, low + codebook_size), dim=1)


# -------------------------------------------------------------------------------- stages
def _transformer_from(values: Any) -> TransformerConfig:
    if isinstance(values, dict):
        return TransformerConfig(**values)
    return values


COARSE_LAYOUTS = ("prefix", "interleaved")


@dataclass
class SemanticStageConfig:
    """:class:`SemanticStage`: ``p(z_t | z_<t)`` over de-duplicated semantic tokens.

    Attributes:
        vocab_size: ``K``, the semantic tokenizer's vocabulary (1024, AudioLM's k-means).
        deduplicate: remove consecutive repetitions from the sequence (AudioLM Sec. IV).
        temperature: default sampling temperature (0.6 for stage 1, per our research notes
            [S]; 0 is greedy).
        top_k: default top-k (None: the whole distribution; the paper names none).
        transformer: architecture; ``max_length`` 768 fits a 30 s crop at 25 Hz + BOS.
    """

    vocab_size: int = 1024
    deduplicate: bool = True
    temperature: float = 0.6
    top_k: int | None = None
    transformer: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(max_length=768))

    def __post_init__(self) -> None:
        self.transformer = _transformer_from(self.transformer)
        check_int("SemanticStageConfig", "vocab_size", self.vocab_size)
        _check_sampling("SemanticStageConfig", self.temperature, self.top_k)


@dataclass
class CoarseStageConfig:
    """:class:`CoarseStage`: the first ``Q'`` RVQ levels conditioned on semantic tokens.

    Attributes:
        semantic_vocab_size: ``K`` (1024).
        codebook_size: ``N`` codes per RVQ level (1024).
        coarse_levels: ``Q'`` (4 of AudioLM's 12).
        frames_per_semantic: ``r``, acoustic frames per semantic frame (2: 50 Hz / 25 Hz).
        temperature: default sampling temperature (0.8 for stage 2 [S]).
        top_k: default top-k (None).
        transformer: ``max_length`` 2304 fits a 10 s crop: 250 + 1 + 500 x 4 = 2251 tokens.
        layout: ``"prefix"`` (AudioLM's: all semantic tokens, SEP, then the acoustic tokens)
            or ``"interleaved"``: the same prefix, then each semantic token again right before
            its ``r`` frames' acoustic tokens, so the token a frame renders sits at a fixed
            distance from it. With little data a small model does not learn the alignment
            of the prefix layout (``r Q' + 1`` more tokens per semantic frame of distance);
            the repeated tokens are given, never targets nor sampled.
    """

    semantic_vocab_size: int = 1024
    codebook_size: int = 1024
    coarse_levels: int = 4
    frames_per_semantic: int = 2
    temperature: float = 0.8
    top_k: int | None = None
    transformer: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(max_length=2304))
    layout: str = "prefix"

    def __post_init__(self) -> None:
        self.transformer = _transformer_from(self.transformer)
        for name in ("semantic_vocab_size", "codebook_size", "coarse_levels",
                     "frames_per_semantic"):
            check_int("CoarseStageConfig", name, getattr(self, name))
        _check_sampling("CoarseStageConfig", self.temperature, self.top_k)
        if self.layout not in COARSE_LAYOUTS:
            raise ValueError(f"CoarseStageConfig: layout must be one of {COARSE_LAYOUTS}, got "
                             f"{self.layout!r}")

    def sequence_length(self, semantic_frames: int) -> int:
        """Tokens of a sequence over ``semantic_frames``: ``T + 1 + r T Q'`` (prefix layout),
        ``T + 1 + T (1 + r Q')`` (interleaved)."""
        per_frame = 1 + self.frames_per_semantic * self.coarse_levels
        return semantic_frames * (per_frame + (self.layout == "interleaved")) + 1


@dataclass
class FineStageConfig:
    """:class:`FineStage`: levels ``Q'+1 .. Q`` conditioned on levels ``1 .. Q'`` by chunks.

    Attributes:
        codebook_size: ``N`` (1024).
        num_levels: ``Q``, all of the codec's levels (12).
        coarse_levels: ``Q'`` (4).
        chunk_frames: frames per non-overlapping chunk (150 = 3 s at 50 Hz, AudioLM).
        temperature: default sampling temperature (0.6 for stage 3 [S]).
        top_k: default top-k (None).
        transformer: ``max_length`` 2048 fits a 3 s chunk: 150 x 4 + 1 + 150 x 8 = 1801.
    """

    codebook_size: int = 1024
    num_levels: int = 12
    coarse_levels: int = 4
    chunk_frames: int = 150
    temperature: float = 0.6
    top_k: int | None = None
    transformer: TransformerConfig = field(
        default_factory=lambda: TransformerConfig(max_length=2048))

    def __post_init__(self) -> None:
        self.transformer = _transformer_from(self.transformer)
        for name in ("codebook_size", "num_levels", "coarse_levels", "chunk_frames"):
            check_int("FineStageConfig", name, getattr(self, name))
        if self.coarse_levels >= self.num_levels:
            raise ValueError(f"FineStageConfig: coarse_levels ({self.coarse_levels}) must be "
                             f"< num_levels ({self.num_levels}), else there is no fine level")
        _check_sampling("FineStageConfig", self.temperature, self.top_k)
        if self.sequence_length(self.chunk_frames) > self.transformer.max_length:
            raise ValueError(f"FineStageConfig: a chunk of {self.chunk_frames} frames makes "
                             f"{self.sequence_length(self.chunk_frames)} tokens, more than "
                             f"transformer.max_length={self.transformer.max_length}")

    def sequence_length(self, frames: int) -> int:
        """Tokens of a chunk of ``frames`` frames: ``C Q' + 1 + C (Q - Q')``."""
        return frames * self.num_levels + 1


class _Stage(nn.Module):
    """Shared by the three stages: the transformer, the loss, sampling defaults and
    checkpoints. ``forward(*batch)`` is :meth:`loss`, so a stage trains under
    ``lutece.train.train`` (and DDP) with :func:`stage_loss`."""

    config_class: type = SemanticStageConfig

    def __init__(self, config: Any, num_real: int) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(config, self.config_class):
            raise TypeError(f"{name}: config must be a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config
        self.special = SpecialTokens(num_real)
        self.transformer = CausalTransformer(self.special.vocab_size, config.transformer)

    @property
    def vocab_size(self) -> int:
        """Ids of this stage's vocabulary, special tokens included."""
        return self.special.vocab_size

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}"

    def build_sequence(self, *tokens: torch.Tensor) -> TokenSequence:
        raise NotImplementedError

    def _check_fits(self, fn: str, length: int, what: str) -> None:
        if length > self.config.transformer.max_length:
            raise ValueError(f"{fn}: {what} makes a sequence of {length} tokens, more than "
                             f"this stage's transformer.max_length="
                             f"{self.config.transformer.max_length}; use shorter crops or a "
                             f"larger max_length")

    def loss(self, *tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) over the target positions of
        :meth:`build_sequence` ``(*tokens)``."""
        return _sequence_loss(self.transformer, self.build_sequence(*tokens))

    def forward(self, *tokens: torch.Tensor) -> torch.Tensor:
        return self.loss(*tokens)

    def _sampling(self, fn: str, temperature: float | None, top_k: int | None
                  ) -> tuple[float, int | None]:
        return _check_sampling(fn, self.config.temperature if temperature is None
                               else temperature,
                               self.config.top_k if top_k is None else top_k)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the stage's kind, config and weights (plus ``extra``) atomically."""
        atomic_save({"format": STAGE_FORMAT, "stage": type(self).__name__,
                     "config": dataclasses.asdict(self.config),
                     "state_dict": self.state_dict(), **extra}, path)
        return Path(path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: Any = None) -> _Stage:
        """The stage stored at ``path`` by :meth:`save`, in eval mode on CPU. A checkpoint of
        another stage, or (when ``config`` is given) of another configuration, is an error."""
        fn = f"{cls.__name__}.from_checkpoint"
        payload = load_tagged(fn, path, STAGE_FORMAT, "AudioLM stage checkpoint")
        if payload["stage"] != cls.__name__:
            raise ValueError(f"{fn}: '{path}' holds a {payload['stage']}, not a {cls.__name__}")
        stored = cls.config_class(**payload["config"])
        if config is not None and stored != config:
            differences = ", ".join(
                f"{f.name}: {getattr(stored, f.name)!r} vs {getattr(config, f.name)!r}"
                for f in dataclasses.fields(stored)
                if getattr(stored, f.name) != getattr(config, f.name))
            raise ValueError(f"{fn}: '{path}' holds a stage of another configuration (stored "
                             f"vs expected: {differences})")
        stage = cls(stored)
        stage.load_state_dict(payload["state_dict"])
        return stage.eval()


def _sequence_loss(transformer: CausalTransformer, sequence: TokenSequence) -> torch.Tensor:
    logits, _ = transformer(sequence.ids[:, :-1])
    targets = sequence.ids[:, 1:].masked_fill(~sequence.loss_mask[:, 1:], _IGNORE)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=_IGNORE)


def stage_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """``loss_fn`` for :func:`lutece.train.train`: ``model(*batch)`` for a tuple/list batch
    (the coarse stage's ``(semantic, codes)``), else ``model(batch)``. Calls the module (not
    ``.loss``) so DistributedDataParallel synchronizes gradients."""
    return model(*batch) if isinstance(batch, (tuple, list)) else model(batch)


class SemanticStage(_Stage):
    """Stage 1: ``p(z_t | z_<t)`` over semantic tokens (see the module doc).

    Vocabulary: ``K`` semantic ids, then BOS, SEP, EOS. Sequence: ``[BOS, dedup(z)]``.
    """

    config_class = SemanticStageConfig

    def __init__(self, config: SemanticStageConfig | None = None) -> None:
        config = config if config is not None else SemanticStageConfig()
        super().__init__(config, config.vocab_size if isinstance(config, SemanticStageConfig)
                         else 0)

    def _rows(self, fn: str, tokens: torch.Tensor) -> list[torch.Tensor]:
        tokens = _check_ids(fn, "tokens", tokens, ndim=2, high=self.config.vocab_size,
                            what="semantic tokens")
        if not self.config.deduplicate:
            return list(tokens)
        return [torch.unique_consecutive(row) for row in tokens]

    def build_sequence(self, tokens: torch.Tensor) -> TokenSequence:
        """``tokens (batch, frames)`` semantic ids -> ``[BOS, dedup(row)]`` per row,
        right-padded with EOS; every token after BOS is a target."""
        fn = "SemanticStage.build_sequence"
        rows = []
        for row in self._rows(fn, tokens):
            ids = F.pad(row, (1, 0), value=self.special.bos)
            mask = torch.ones_like(ids, dtype=torch.bool)
            mask[0] = False
            rows.append((ids, mask))
        if not rows or tokens.shape[1] == 0:
            raise ValueError(f"{fn}: tokens must hold at least one row and one frame, got "
                             f"shape {tuple(tokens.shape)}")
        sequence = _stack_rows(rows, self.special.eos)
        self._check_fits(fn, sequence.ids.shape[1], f"{tokens.shape[1]} semantic frames")
        return sequence

    def generate(self, prompt: torch.Tensor | None, num_frames: int, *,
                 batch_size: int = 1, temperature: float | None = None,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Sample ``num_frames`` semantic tokens after ``prompt (batch, frames)`` (de-duplicated
        like training sequences; None: unconditional, ``batch_size`` rows). Returns only the
        new tokens, ``(batch, num_frames)`` in ``[0, K)``.

        With ``deduplicate=True`` the model emits de-duplicated tokens, which carry no
        duration: :class:`~lutece.audio.lm.audiolm.AudioLM` reads each as one semantic frame.
        Rows of a batched prompt must keep the same length after de-duplication."""
        fn = "SemanticStage.generate"
        check_int(fn, "num_frames", num_frames)
        temperature, top_k = self._sampling(fn, temperature, top_k)
        device = self.transformer.head.weight.device
        if prompt is None:
            check_int(fn, "batch_size", batch_size)
            prefix = torch.full((batch_size, 1), self.special.bos, dtype=torch.long,
                                device=device)
        else:
            rows = self._rows(fn, prompt)
            if len({row.shape[0] for row in rows}) > 1:
                raise ValueError(f"{fn}: the prompt's rows have different lengths after "
                                 f"de-duplication ({[row.shape[0] for row in rows]}); "
                                 f"generate them one at a time")
            prefix = F.pad(torch.stack(rows), (1, 0), value=self.special.bos)
        self._check_fits(fn, prefix.shape[1] + num_frames,
                         f"a prompt of {prefix.shape[1] - 1} de-duplicated tokens + "
                         f"{num_frames} new ones")
        ranges = torch.tensor([[0, self.config.vocab_size]], device=prefix.device)
        return self.transformer.generate(prefix, ranges.expand(num_frames, 2),
                                         temperature=temperature, top_k=top_k,
                                         generator=generator, use_cache=use_cache)


class CoarseStage(_Stage):
    """Stage 2: the first ``Q'`` levels conditioned on the semantic tokens (module doc).

    Vocabulary: ``K`` semantic ids, then ``Q' N`` acoustic ids (level ``q`` code ``c`` ->
    ``K + q N + c``), then BOS, SEP, EOS. Sequence: ``[z (with repetitions), SEP,
    flatten(y^{1..Q'})]`` (``layout="interleaved"``: ``z_t`` also before frames ``r t ..
    r t + r - 1`` after SEP, fed at generation, not sampled); only the acoustic tokens are
    targets.
    """

    config_class = CoarseStageConfig

    def __init__(self, config: CoarseStageConfig | None = None) -> None:
        config = config if config is not None else CoarseStageConfig()
        num_real = (config.semantic_vocab_size + config.coarse_levels * config.codebook_size
                    if isinstance(config, CoarseStageConfig) else 0)
        super().__init__(config, num_real)

    @property
    def acoustic_offset(self) -> int:
        """The id of level 1's code 0 (``K``): acoustic ids follow the semantic ones."""
        return self.config.semantic_vocab_size

    def _check_pair(self, fn: str, semantic: torch.Tensor, codes: torch.Tensor | None,
                    exact: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        cfg = self.config
        semantic = _check_ids(fn, "semantic", semantic, ndim=2, high=cfg.semantic_vocab_size,
                              what="semantic tokens")
        if semantic.shape[1] == 0:
            raise ValueError(f"{fn}: semantic must hold at least one frame")
        if codes is None:
            return semantic, None
        check_tensor(fn, "codes", codes)
        if codes.ndim != 3 or codes.shape[-1] < cfg.coarse_levels:
            raise ValueError(f"{fn}: codes must have shape (batch, frames, levels) with at "
                             f"least coarse_levels={cfg.coarse_levels} levels, got "
                             f"{tuple(codes.shape)}")
        if codes.shape[0] != semantic.shape[0]:
            raise ValueError(f"{fn}: semantic and codes have batch sizes {semantic.shape[0]} "
                             f"and {codes.shape[0]}")
        expected = cfg.frames_per_semantic * semantic.shape[1]
        if (codes.shape[1] != expected) if exact else (codes.shape[1] > expected):
            raise ValueError(
                f"{fn}: {semantic.shape[1]} semantic frames x frames_per_semantic="
                f"{cfg.frames_per_semantic} = {expected} acoustic frames "
                f"{'expected' if exact else 'at most'}, got codes with {codes.shape[1]} frames")
        return semantic, codes[..., :cfg.coarse_levels]

    def _acoustic_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return self.acoustic_offset + flatten_codes(codes, self.config.codebook_size)

    def _after_separator(self, semantic: torch.Tensor, codes: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens after SEP for the first ``F`` frames ``codes (batch, F, Q')`` and which
        of them are acoustic: ``K + flatten(codes)``, or in the interleaved layout, per
        semantic frame ``t`` with a frame among the ``F``, ``z_t`` then its frames'
        tokens. Both ``(batch, length)``."""
        cfg = self.config
        acoustic = self._acoustic_ids(codes)
        if cfg.layout == "prefix":
            return acoustic, torch.ones_like(acoustic, dtype=torch.bool)
        batch, frames = codes.shape[:2]
        r, per_frame = cfg.frames_per_semantic, cfg.coarse_levels
        blocks = -(-frames // r)
        # pad the last block to r frames, lay the blocks out, then drop the padding (at the end)
        padded = F.pad(acoustic, (0, (blocks * r - frames) * per_frame))
        ids = torch.cat((semantic[:, :blocks, None],
                         padded.reshape(batch, blocks, r * per_frame)), dim=2)
        is_acoustic = torch.ones_like(ids, dtype=torch.bool)
        is_acoustic[:, :, 0] = False
        length = blocks + frames * per_frame
        return ids.reshape(batch, -1)[:, :length], is_acoustic.reshape(batch, -1)[:, :length]

    def build_sequence(self, semantic: torch.Tensor, codes: torch.Tensor) -> TokenSequence:
        """``semantic (batch, T)`` and ``codes (batch, r T, >= Q')`` (levels beyond ``Q'`` are
        ignored) -> ``[semantic, SEP, K + flatten(codes[..., :Q'])]``, ``(batch, T + 1 +
        r T Q')``, the semantic tokens keeping their repetitions; in the interleaved layout
        ``z_t`` also precedes frames ``r t .. r t + r - 1`` after SEP (``T`` more tokens).
        Only acoustic tokens are targets."""
        fn = "CoarseStage.build_sequence"
        semantic, codes = self._check_pair(fn, semantic, codes, exact=True)
        tail, is_acoustic = self._after_separator(semantic, codes)
        separator = semantic.new_full((semantic.shape[0], 1), self.special.separator)
        ids = torch.cat((semantic, separator, tail), dim=1)
        mask = torch.cat((torch.zeros_like(semantic, dtype=torch.bool),
                          torch.zeros_like(separator, dtype=torch.bool), is_acoustic), dim=1)
        self._check_fits(fn, ids.shape[1], f"{semantic.shape[1]} semantic frames")
        return TokenSequence(ids, mask)

    def generate(self, semantic: torch.Tensor, prompt_codes: torch.Tensor | None = None, *,
                 temperature: float | None = None, top_k: int | None = None,
                 generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Coarse codes ``(batch, r T, Q')`` for ``semantic (batch, T)``: the first ``P``
        frames are ``prompt_codes (batch, P, >= Q')`` (``P <= r T``; None: 0) unchanged, the
        rest are sampled level by level, frame by frame."""
        fn = "CoarseStage.generate"
        cfg = self.config
        temperature, top_k = self._sampling(fn, temperature, top_k)
        semantic, prompt_codes = self._check_pair(fn, semantic, prompt_codes, exact=False)
        batch, frames = semantic.shape[0], cfg.frames_per_semantic * semantic.shape[1]
        if prompt_codes is None:
            prompt_codes = semantic.new_empty(batch, 0, cfg.coarse_levels)
        separator = semantic.new_full((batch, 1), self.special.separator)
        given, _ = self._after_separator(semantic, prompt_codes)
        prefix = torch.cat((semantic, separator, given), dim=1)
        missing = frames - prompt_codes.shape[1]
        self._check_fits(fn, cfg.sequence_length(semantic.shape[1]),
                         f"{semantic.shape[1]} semantic frames")
        ranges = _level_ranges(missing, 0, cfg.coarse_levels, cfg.codebook_size,
                               self.acoustic_offset, semantic.device)
        forced = None
        if cfg.layout == "interleaved" and missing:
            # the whole layout over placeholder codes says where the given semantic tokens go
            placeholder = prompt_codes.new_zeros(batch, frames, cfg.coarse_levels)
            tail, is_acoustic = self._after_separator(semantic, placeholder)
            tail, is_acoustic = tail[:, given.shape[1]:], is_acoustic[0, given.shape[1]:]
            forced = tail.masked_fill(is_acoustic, -1)
            full = ranges.new_empty(is_acoustic.shape[0], 2)
            full[~is_acoustic] = torch.tensor([0, cfg.semantic_vocab_size], device=full.device)
            full[is_acoustic] = ranges
            ranges = full
        new = self.transformer.generate(prefix, ranges, temperature=temperature, top_k=top_k,
                                        generator=generator, use_cache=use_cache,
                                        forced=forced)
        if forced is not None:
            new = new[:, forced[0] < 0]
        new = (new - self.acoustic_offset).reshape(batch, missing, cfg.coarse_levels) \
            % cfg.codebook_size
        return torch.cat((prompt_codes, new), dim=1)


class FineStage(_Stage):
    """Stage 3: levels ``Q'+1 .. Q`` conditioned on levels ``1 .. Q'`` by non-overlapping
    chunks of ``chunk_frames`` frames (module doc). No semantic token ever enters it.

    Vocabulary: the ``Q N`` acoustic ids of :func:`flatten_codes`, then BOS, SEP, EOS.
    Sequence per chunk: ``[flatten(y^{1..Q'}), SEP, flatten(y^{Q'+1..Q}, first_level=Q')]``;
    only the fine tokens are targets.
    """

    config_class = FineStageConfig

    def __init__(self, config: FineStageConfig | None = None) -> None:
        config = config if config is not None else FineStageConfig()
        num_real = (config.num_levels * config.codebook_size
                    if isinstance(config, FineStageConfig) else 0)
        super().__init__(config, num_real)

    def _check_codes(self, fn: str, name: str, codes: torch.Tensor, levels: int
                     ) -> torch.Tensor:
        check_tensor(fn, name, codes)
        if codes.ndim != 3 or codes.shape[-1] != levels or codes.shape[1] == 0:
            raise ValueError(f"{fn}: {name} must have shape (batch, frames >= 1, {levels}), "
                             f"got {tuple(codes.shape)}")
        return _check_ids(fn, name, codes, ndim=3, high=self.config.codebook_size,
                          what="codes")

    def _chunks(self, codes: torch.Tensor) -> list[torch.Tensor]:
        return list(codes.split(self.config.chunk_frames, dim=1))

    def build_sequence(self, codes: torch.Tensor) -> TokenSequence:
        """``codes (batch, frames, Q)`` -> one sequence per chunk of ``chunk_frames`` frames
        (the last may be shorter and is right-padded with EOS), stacked chunk-major:
        ``(batch * chunks, chunk_frames * Q + 1)``."""
        fn = "FineStage.build_sequence"
        cfg = self.config
        codes = self._check_codes(fn, "codes", codes, cfg.num_levels)
        rows = []
        for chunk in self._chunks(codes):
            coarse = flatten_codes(chunk[..., :cfg.coarse_levels], cfg.codebook_size)
            fine = flatten_codes(chunk[..., cfg.coarse_levels:], cfg.codebook_size,
                                 first_level=cfg.coarse_levels)
            separator = coarse.new_full((coarse.shape[0], 1), self.special.separator)
            ids = torch.cat((coarse, separator, fine), dim=1)
            mask = torch.zeros_like(ids, dtype=torch.bool)
            mask[:, -fine.shape[1]:] = True
            rows.extend(zip(ids, mask))
        return _stack_rows(rows, self.special.eos)

    def generate(self, coarse: torch.Tensor, *, temperature: float | None = None,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Fine codes ``(batch, frames, Q - Q')`` for ``coarse (batch, frames, Q')``, sampled
        chunk by chunk (each chunk sees only its own coarse codes, as in training)."""
        fn = "FineStage.generate"
        cfg = self.config
        temperature, top_k = self._sampling(fn, temperature, top_k)
        coarse = self._check_codes(fn, "coarse", coarse, cfg.coarse_levels)
        fine_levels = cfg.num_levels - cfg.coarse_levels
        out = []
        for chunk in self._chunks(coarse):
            batch, frames, _ = chunk.shape
            prefix = F.pad(flatten_codes(chunk, cfg.codebook_size), (0, 1),
                           value=self.special.separator)
            ranges = _level_ranges(frames, cfg.coarse_levels, fine_levels, cfg.codebook_size,
                                   0, chunk.device)
            new = self.transformer.generate(prefix, ranges, temperature=temperature,
                                            top_k=top_k, generator=generator,
                                            use_cache=use_cache)
            out.append(new.reshape(batch, frames, fine_levels) % cfg.codebook_size)
        return torch.cat(out, dim=1)
