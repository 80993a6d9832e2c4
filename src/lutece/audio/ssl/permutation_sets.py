"""The fixed permutation set of the classification ("jigsaw") baseline.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw
Puzzles" (ECCV 2016), cast reordering as classification over K permutations chosen far apart
in Hamming distance (the number of positions where two permutations differ), so that the
classes are easy to tell apart. Carr et al. (2021) use this as the baseline that sees only K
of the n! permutations. The set is built greedily: start from a random permutation, then add,
one at a time, the candidate whose *minimum* Hamming distance to the permutations already
chosen is largest (ties broken at random, seeded).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["fixed_permutation_set", "hamming_distances"]

_ENUMERATE_UP_TO = 9  # 9! = 362,880 candidates: enumerated; larger n samples candidates
_SAMPLED_CANDIDATES = 100_000


def hamming_distances(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Pairwise Hamming distances: (a, n) and (b, n) permutations -> (a, b) int64."""
    return (first.unsqueeze(1) != second.unsqueeze(0)).sum(dim=-1)


def _candidates(n: int, rng: np.random.Generator) -> np.ndarray:
    if n <= _ENUMERATE_UP_TO:
        return np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    sampled = np.argsort(rng.random((_SAMPLED_CANDIDATES, n)), axis=1)
    return np.unique(sampled, axis=0).astype(np.int16)


def fixed_permutation_set(num_patches: int, size: int, *, seed: int = 0) -> torch.Tensor:
    """K permutations of ``num_patches`` items chosen by greedy max-min Hamming distance.

    Args:
        num_patches: n >= 2, the items permuted.
        size: K, 1 <= K <= n! (for n > 9 the candidates are 100,000 random permutations, so
            K is also capped by that).
        seed: the first permutation and the tie-breaks.

    Returns:
        (K, n) int64, each row a permutation of 0..n-1, all rows distinct; row k maximizes
        min_{j < k} Hamming(row k, row j) over the candidates not yet chosen.
    """
    fn = "fixed_permutation_set"
    for name, value in (("num_patches", num_patches), ("size", size), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if num_patches < 2:
        raise ValueError(f"{fn}: num_patches must be >= 2, got {num_patches}")
    if seed < 0:
        raise ValueError(f"{fn}: seed must be >= 0, got {seed}")
    available = (math.factorial(num_patches) if num_patches <= _ENUMERATE_UP_TO
                 else _SAMPLED_CANDIDATES)
    if not 1 <= size <= available:
        raise ValueError(f"{fn}: size must be in 1..{available} "
                         f"({'n!' if num_patches <= _ENUMERATE_UP_TO else 'candidates'} "
                         f"for n = {num_patches}), got {size}")
    rng = np.random.default_rng(seed)
    candidates = _candidates(num_patches, rng)
    size = min(size, len(candidates))
    chosen = [int(rng.integers(len(candidates)))]
    # min distance of every candidate to the chosen set; -1 marks the chosen ones
    nearest = (candidates != candidates[chosen[0]]).sum(axis=1)
    nearest[chosen[0]] = -1
    for _ in range(size - 1):
        best = np.flatnonzero(nearest == nearest.max())
        pick = int(best[rng.integers(len(best))])
        chosen.append(pick)
        nearest = np.minimum(nearest, (candidates != candidates[pick]).sum(axis=1))
        nearest[chosen] = -1
    return torch.from_numpy(candidates[chosen].astype(np.int64))
