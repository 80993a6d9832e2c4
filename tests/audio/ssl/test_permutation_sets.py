"""The fixed-set baseline's permutations: the requested number, distinct, and chosen by
greedy max-min Hamming distance (checked against brute force over all of S_n)."""

import itertools
import math

import pytest
import torch

from lutece.audio.ssl import fixed_permutation_set, hamming_distances


@pytest.mark.parametrize("n, size", [(2, 2), (3, 4), (3, 6), (4, 10), (4, 24), (6, 100)])
def test_set_has_the_requested_size_of_distinct_permutations(n, size):
    chosen = fixed_permutation_set(n, size, seed=3)
    assert chosen.shape == (size, n) and chosen.dtype == torch.int64
    assert torch.equal(chosen.sort(dim=1).values, torch.arange(n).expand(size, -1))
    assert len(torch.unique(chosen, dim=0)) == size


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_pick_maximizes_the_minimum_hamming_distance_brute_force(n, seed):
    chosen = [tuple(row) for row in fixed_permutation_set(n, math.factorial(n),
                                                          seed=seed).tolist()]
    everything = list(itertools.permutations(range(n)))
    assert sorted(chosen) == everything  # K = n! takes them all
    for k in range(1, len(chosen)):
        def min_distance(candidate, members=chosen[:k]):
            return min(sum(a != b for a, b in zip(candidate, m)) for m in members)
        best = max(min_distance(p) for p in everything if p not in chosen[:k])
        assert min_distance(chosen[k]) == best


def test_first_picks_are_far_apart_and_seeds_differ():
    chosen = fixed_permutation_set(5, 10, seed=0)
    distances = hamming_distances(chosen, chosen)
    off_diagonal = distances[~torch.eye(10, dtype=torch.bool)]
    generator = torch.Generator().manual_seed(0)
    random_sets = [torch.rand(10, 5, generator=generator).argsort(dim=1) for _ in range(50)]
    random_minima = [hamming_distances(r, r).fill_diagonal_(5).min() for r in random_sets]
    assert off_diagonal.min() == 3 and max(random_minima) <= 3
    assert sum(m == 3 for m in random_minima) < 10  # random sets are usually closer
    assert not torch.equal(chosen, fixed_permutation_set(5, 10, seed=1))
    assert torch.equal(chosen, fixed_permutation_set(5, 10, seed=0))


def test_hamming_distances_brute_force():
    first = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    second = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 3, 2]])
    expected = [[sum(a != b for a, b in zip(x, y)) for y in second.tolist()]
                for x in first.tolist()]
    assert hamming_distances(first, second).tolist() == expected


def test_large_n_samples_candidates():
    chosen = fixed_permutation_set(12, 6, seed=0)
    assert chosen.shape == (6, 12) and len(torch.unique(chosen, dim=0)) == 6
    assert hamming_distances(chosen, chosen).fill_diagonal_(12).min() >= 10


@pytest.mark.parametrize("args, error, message", [
    ((1, 1), ValueError, "num_patches must be >= 2"),
    ((3, 7), ValueError, r"size must be in 1..6 \(n! for n = 3\)"),
    ((3, 0), ValueError, "size must be"),
    ((3.0, 2), TypeError, "num_patches must be an int"),
    ((3, True), TypeError, "size must be an int"),
])
def test_bad_arguments_are_refused(args, error, message):
    with pytest.raises(error, match=message):
        fixed_permutation_set(*args)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        fixed_permutation_set(3, 2, seed=-1)
