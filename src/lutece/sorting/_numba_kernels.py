"""CPU kernels for the projection onto the permutahedron (numba, compiled once and cached).

Blondel, Teboul, Berthet & Djolonga, "Fast Differentiable Sorting and Ranking", ICML 2020.
The projection of ``z`` onto the permutahedron of ``w`` (both rows of length n, ``w``
sorted in decreasing order) reduces to one isotonic regression (Prop. 3 of the paper):

    P(z, w) = z - v(s, w)[sigma^-1],   sigma = argsort(z, descending),  s = z[sigma],

where ``v`` is the solution of a decreasing isotonic problem solved by pool-adjacent
violators (PAV) in O(n) after the O(n log n) sort:

* quadratic regularization:  v = argmin_{v_1 >= ... >= v_n} 1/2 ||v - (s - w)||^2,
  each block B takes the value  mean(s_B) - mean(w_B);
* entropic (KL) regularization:  v = argmin_{v_1 >= ... >= v_n} <exp(s - v), 1> + <exp(w), v>,
  each block B takes the value  logsumexp(s_B) - logsumexp(w_B).

The Jacobian is block diagonal (Lemma 3): within a block, dv/ds is the block mean (L2) or
softmax(s_B) (KL), and dv/dw is minus the mean (L2) or minus softmax(w_B) (KL). Blocks are
returned as integer segment ids, never compared in the value dtype.

Every kernel processes a (B, n) batch in one call. ``sort_w`` selects which argument is
sorted inside the kernel: ``False`` (soft rank, top-k) sorts ``z`` and expects ``w`` sorted
in decreasing order; ``True`` (soft sort) sorts ``w`` and expects ``z`` sorted in decreasing
order. The permutation of the sorted argument is returned for the backward pass. Rows are sorted
by an LSD radix sort on the IEEE bytes (O(n)), several times faster than a comparison sort
on CPU for the long rows where sorting dominates.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["project_forward", "project_backward"]


# Below this length a row is argsorted by numpy before the kernel (its vectorized sort beats
# four to eight radix passes and numba's quicksort on short rows); above, by radix sort.
SMALL_ROW = 128


@njit(cache=True)
def _sortable_keys(row, keys):
    """Unsigned integer keys whose order is the float order of ``row`` (IEEE 754 trick:
    flip all bits of negatives, set the sign bit of non-negatives)."""
    if row.itemsize == 4:
        bits32 = row.view(np.uint32)
        for i in range(row.shape[0]):
            b = np.uint64(bits32[i])
            keys[i] = b ^ np.uint64(0xFFFFFFFF) if b >> np.uint64(31) else b | np.uint64(0x80000000)
    else:
        bits64 = row.view(np.uint64)
        for i in range(row.shape[0]):
            b = bits64[i]
            keys[i] = (b ^ np.uint64(0xFFFFFFFFFFFFFFFF) if b >> np.uint64(63)
                       else b | np.uint64(0x8000000000000000))


@njit(cache=True)
def _argsort_row(row, order, keys, scratch_keys, scratch_order, counts):
    """Ascending argsort of one row into ``order``: LSD radix sort on the float's bytes
    (O(n), 4 passes for float32 and 8 for float64, passes whose byte is constant skipped)."""
    n = row.shape[0]
    _sortable_keys(row, keys)
    for i in range(n):
        order[i] = i
    source_keys, source_order = keys, order
    target_keys, target_order = scratch_keys, scratch_order
    for byte in range(row.itemsize):
        shift = np.uint64(8 * byte)
        counts[:] = 0
        for i in range(n):
            counts[(source_keys[i] >> shift) & np.uint64(255)] += 1
        if counts.max() == n:
            continue
        total = 0
        for digit in range(256):
            count = counts[digit]
            counts[digit] = total
            total += count
        for i in range(n):
            digit = (source_keys[i] >> shift) & np.uint64(255)
            j = counts[digit]
            counts[digit] = j + 1
            target_keys[j] = source_keys[i]
            target_order[j] = source_order[i]
        source_keys, target_keys = target_keys, source_keys
        source_order, target_order = target_order, source_order
    if source_order is not order:
        order[:] = source_order


@njit(cache=True, inline="always")
def _logaddexp(a, b):
    # exp(-inf - -inf) would be NaN: an empty (-inf) side contributes nothing.
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + np.log1p(np.exp(b - a))
    return b + np.log1p(np.exp(a - b))


@njit(cache=True)
def _pav_row(s, w, kl, starts, first, second):
    """Decreasing PAV on one row; returns the number of blocks.

    ``starts[k]`` is the first sorted position of block k. For L2, ``first``/``second`` hold
    the block sums of s and w and the block value is (first - second) / size; for KL they
    hold logsumexp(s_B) and logsumexp(w_B) and the value is first - second.
    """
    n = s.shape[0]
    num_blocks = 0
    for i in range(n):
        starts[num_blocks] = i
        first[num_blocks] = s[i]
        second[num_blocks] = w[i]
        num_blocks += 1
        # Pool while the last two blocks violate v_prev >= v_last.
        while num_blocks > 1:
            last = num_blocks - 1
            prev = last - 1
            if kl:
                value_prev = first[prev] - second[prev]
                value_last = first[last] - second[last]
            else:
                end_last = i + 1
                size_last = end_last - starts[last]
                size_prev = starts[last] - starts[prev]
                value_prev = (first[prev] - second[prev]) / size_prev
                value_last = (first[last] - second[last]) / size_last
            if value_prev >= value_last:
                break
            if kl:
                first[prev] = _logaddexp(first[prev], first[last])
                second[prev] = _logaddexp(second[prev], second[last])
            else:
                first[prev] += first[last]
                second[prev] += second[last]
            num_blocks -= 1
    return num_blocks


@njit(cache=True)
def project_forward(z, w, kl, sort_w, presorted, out, perm, segments):
    """Batched projection P(z, w); fills ``out`` (B, n), ``perm`` and ``segments`` (B, n).

    ``presorted``: True if ``perm`` already holds the ascending argsort of the sorted
    argument (short rows, sorted by numpy beforehand); False to radix-sort here.
    """
    batch, n = z.shape
    s = np.empty(n, dtype=np.float64)
    ws = np.empty(n, dtype=np.float64)
    starts = np.empty(n + 1, dtype=np.int64)
    first = np.empty(n, dtype=np.float64)
    second = np.empty(n, dtype=np.float64)
    order = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.uint64)
    scratch_keys = np.empty(n, dtype=np.uint64)
    scratch_order = np.empty(n, dtype=np.int64)
    counts = np.empty(256, dtype=np.int64)
    for b in range(batch):
        if presorted:
            order[:] = perm[b]
        else:
            _argsort_row(w[b] if sort_w else z[b], order, keys, scratch_keys, scratch_order,
                         counts)
        for i in range(n):
            perm[b, i] = order[n - 1 - i]  # decreasing order
        for i in range(n):
            if sort_w:
                s[i] = z[b, i]
                ws[i] = w[b, perm[b, i]]
            else:
                s[i] = z[b, perm[b, i]]
                ws[i] = w[b, i]
        num_blocks = _pav_row(s, ws, kl, starts, first, second)
        starts[num_blocks] = n
        for k in range(num_blocks):
            lo = starts[k]
            hi = starts[k + 1]
            # out = (s - block value of s) + block value of w, so that a singleton block
            # returns its w exactly (the hard operator in the small-strength limit).
            if kl:
                value_s = first[k]
                value_w = second[k]
            else:
                value_s = first[k] / (hi - lo)
                value_w = second[k] / (hi - lo)
            for i in range(lo, hi):
                segments[b, i] = k
                position = i if sort_w else perm[b, i]
                out[b, position] = (s[i] - value_s) + value_w


@njit(cache=True)
def project_backward(grad, z, w, perm, segments, kl, sort_w, grad_z, grad_w):
    """Vector-Jacobian product of :func:`project_forward` for both z and w, in O(n) a row."""
    batch, n = grad.shape
    for b in range(batch):
        lo = 0
        while lo < n:
            hi = lo + 1
            while hi < n and segments[b, hi] == segments[b, lo]:
                hi += 1
            total = 0.0
            for i in range(lo, hi):
                total += grad[b, i if sort_w else perm[b, i]]
            if kl:
                max_s = -np.inf
                max_w = -np.inf
                for i in range(lo, hi):
                    zi = z[b, i] if sort_w else z[b, perm[b, i]]
                    wi = w[b, perm[b, i]] if sort_w else w[b, i]
                    max_s = max(max_s, zi)
                    max_w = max(max_w, wi)
                norm_s = 0.0
                norm_w = 0.0
                for i in range(lo, hi):
                    zi = z[b, i] if sort_w else z[b, perm[b, i]]
                    wi = w[b, perm[b, i]] if sort_w else w[b, i]
                    norm_s += np.exp(zi - max_s)
                    norm_w += np.exp(wi - max_w)
                for i in range(lo, hi):
                    z_pos = i if sort_w else perm[b, i]
                    w_pos = perm[b, i] if sort_w else i
                    softmax_s = np.exp(z[b, z_pos] - max_s) / norm_s
                    softmax_w = np.exp(w[b, w_pos] - max_w) / norm_w
                    grad_z[b, z_pos] = grad[b, z_pos] - softmax_s * total
                    grad_w[b, w_pos] = softmax_w * total
            else:
                mean = total / (hi - lo)
                for i in range(lo, hi):
                    z_pos = i if sort_w else perm[b, i]
                    w_pos = perm[b, i] if sort_w else i
                    grad_z[b, z_pos] = grad[b, z_pos] - mean
                    grad_w[b, w_pos] = mean
            lo = hi
