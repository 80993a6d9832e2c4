"""Self-supervised audio representations from permutations (result 5: Carr, Berthet,
Blondel, Teboul & Zeghidour, "Self-supervised learning of audio representations from
permutations with differentiable ranking", IEEE SPL 2021).

Cut log-mel spectrograms into patches (:class:`PatchShuffler`), shuffle them, and train an
encoder to score each patch so that the scores' ranks recover the order
(:class:`PermutationPretext`: soft ranks from :mod:`lutece.sorting`, the perturbed
Fenchel-Young loss from :mod:`lutece.perturbed`, or the fixed-set classification baseline);
:func:`pretrain` runs it on :mod:`lutece.train`, :func:`linear_probe` evaluates the frozen
encoder downstream.

Example:
    >>> specs = log_mel_spectrograms(waves, 16000)[..., :96]       # (n, 64, 96)
    >>> pretext = PermutationPretext(ConvEncoder(), "soft_rank",
    ...                              shuffler=PatchShuffler("time_frequency", (2, 3)))
    >>> encoder = pretrain(pretext, specs, steps=500)
    >>> linear_probe(encoder, (train_specs, train_labels), (test_specs, test_labels))
"""

from .encoder import ConvEncoder
from .patches import PATCH_KINDS, PatchShuffler, ShuffledPatches, patchify, unpatchify, unshuffle
from .permutation_sets import fixed_permutation_set, hamming_distances
from .pretext import RANKINGS, PermutationPretext, PretextOutput, spearman_correlation
from .probe import PROBE_TASKS, ProbeResult, embed, linear_probe
from .training import SpectrogramDataset, log_mel_spectrograms, pretrain

__all__ = [
    "PATCH_KINDS", "PatchShuffler", "ShuffledPatches", "patchify", "unpatchify", "unshuffle",
    "fixed_permutation_set", "hamming_distances",
    "ConvEncoder",
    "RANKINGS", "PermutationPretext", "PretextOutput", "spearman_correlation",
    "pretrain", "log_mel_spectrograms", "SpectrogramDataset",
    "PROBE_TASKS", "ProbeResult", "embed", "linear_probe",
]
