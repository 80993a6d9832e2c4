"""Differentiable perturbed optimizers and Fenchel-Young losses (Berthet et al., NeurIPS
2020): make any discrete solver differentiable by averaging it over random perturbations of
its input, train with the matching loss, or fit a perturbed model from decisions alone."""

from . import solvers
from .estimation import perturbed_maximum_likelihood
from .losses import FenchelYoungLoss
from .noise import NOISES
from .perturbed import PerturbedOptimizer, perturbed
from .solvers import argmax_one_hot, assignment, ranks, shortest_path_grid, sort, topk_mask

__all__ = [
    "perturbed",
    "PerturbedOptimizer",
    "FenchelYoungLoss",
    "perturbed_maximum_likelihood",
    "NOISES",
    "solvers",
    "argmax_one_hot",
    "topk_mask",
    "ranks",
    "sort",
    "shortest_path_grid",
    "assignment",
]
