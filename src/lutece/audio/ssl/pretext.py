"""The permutation pretext task of Carr, Berthet, Blondel, Teboul & Zeghidour (IEEE SPL 2021).

A spectrogram is cut into n patches (:class:`~.patches.PatchShuffler`) which are shuffled;
the encoder embeds each patch and a linear head gives it a score theta_j. The model must
recover the true ranks r* (each shuffled patch's original position, 1-based):

- ``"soft_rank"``: the soft ranks r_eps(theta) (Blondel et al., ICML 2020: projection of
  theta / eps onto the permutahedron, :func:`lutece.sorting.soft_rank`) are regressed on the
  true ranks, loss = mean_j (r_eps(theta)_j - r*_j)^2. Every one of the n! permutations is a
  training target.
- ``"perturbed"``: the Fenchel-Young loss of the perturbed ranking solver (Berthet et al.,
  NeurIPS 2020, :class:`lutece.perturbed.FenchelYoungLoss` over
  :func:`lutece.perturbed.ranks`, the argmax of <theta, y> over the permutations y of
  1..n), loss = F_sigma(theta) - <theta, r*>, gradient E[ranks(theta + sigma Z)] - r*.
- ``"fixed_set"``: the classification baseline (Noroozi & Favaro, ECCV 2016): the
  permutation is drawn from a fixed set of K (:func:`~.permutation_sets.fixed_permutation_set`)
  and the concatenated patch embeddings are classified among the K, with cross-entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..._validation import check_choice
from ...perturbed import FenchelYoungLoss
from ...perturbed import ranks as hard_ranks
from ...sorting import soft_rank
from .patches import PatchShuffler, ShuffledPatches
from .permutation_sets import fixed_permutation_set

__all__ = ["RANKINGS", "PermutationPretext", "PretextOutput", "spearman_correlation"]

RANKINGS = ("soft_rank", "perturbed", "fixed_set")


@dataclass(frozen=True)
class PretextOutput:
    """One forward pass of the pretext.

    Attributes:
        loss: scalar, averaged over the batch.
        predicted_ranks: (batch, n) hard ranks the model predicts (1-based).
        true_ranks: (batch, n).
        scores: (batch, n) patch scores, or (batch, K) logits for ``"fixed_set"``.
    """

    loss: torch.Tensor
    predicted_ranks: torch.Tensor
    true_ranks: torch.Tensor
    scores: torch.Tensor

    def metrics(self) -> dict[str, float]:
        """Exact-permutation accuracy and mean Spearman correlation of the batch."""
        exact = (self.predicted_ranks == self.true_ranks).all(dim=1).float().mean()
        spearman = spearman_correlation(self.predicted_ranks, self.true_ranks).mean()
        return {"exact": float(exact), "spearman": float(spearman)}


def spearman_correlation(predicted_ranks: torch.Tensor, true_ranks: torch.Tensor
                         ) -> torch.Tensor:
    """Spearman's rho of each row of two (batch, n) rank tensors without ties:
    1 - 6 sum d^2 / (n (n^2 - 1))."""
    n = predicted_ranks.shape[-1]
    squared = ((predicted_ranks.double() - true_ranks.double()) ** 2).sum(dim=-1)
    return 1.0 - 6.0 * squared / (n * (n * n - 1))


def _positive(fn: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{fn}: {name} must be a positive number, got {value!r}")
    return float(value)


class PermutationPretext(nn.Module):
    """The pretext model: encoder + head, with the loss of the chosen ranking.

    Args:
        encoder: maps (m, patch_freq, patch_time) patches to (m, d) embeddings (e.g.
            :class:`~.encoder.ConvEncoder`); ``d`` is ``encoder.embedding_dim`` unless
            ``embedding_dim`` is given.
        ranking: ``"soft_rank"``, ``"perturbed"`` or ``"fixed_set"`` (see the module
            docstring).
        shuffler: how spectrograms are cut and shuffled; default a (2, 3) time-frequency
            grid.
        num_fixed_permutations: K for ``"fixed_set"`` (1 < K <= n!).
        regularization_strength: eps of the soft ranks (``"soft_rank"``); smaller is closer
            to hard ranks (the loss is exact 0 once the scores of the true order are eps
            apart).
        sigma, num_samples: noise amplitude and Monte Carlo samples of the perturbed
            ranks (``"perturbed"``).
        hidden_dim: width of the fixed-set classifier's hidden layer.
        embedding_dim: d, when the encoder has no ``embedding_dim`` attribute.
        seed: seeds the fixed permutation set.

    ``pretext(spectrogram)`` takes (batch, freq, time) and returns a :class:`PretextOutput`;
    the patch permutations come from ``shuffler`` (torch's global generator by default).
    """

    def __init__(self, encoder: nn.Module, ranking: str = "soft_rank", *,
                 shuffler: PatchShuffler | None = None, num_fixed_permutations: int = 24,
                 regularization_strength: float = 1.0, sigma: float = 1.0,
                 num_samples: int = 100, hidden_dim: int = 256,
                 embedding_dim: int | None = None, seed: int = 0) -> None:
        super().__init__()
        fn = "PermutationPretext"
        if not isinstance(encoder, nn.Module):
            raise TypeError(f"{fn}: encoder must be a torch.nn.Module, got "
                            f"{type(encoder).__name__}")
        check_choice(fn, "ranking", ranking, RANKINGS)
        shuffler = PatchShuffler() if shuffler is None else shuffler
        if not isinstance(shuffler, PatchShuffler):
            raise TypeError(f"{fn}: shuffler must be a PatchShuffler, got "
                            f"{type(shuffler).__name__}")
        if embedding_dim is None:
            embedding_dim = getattr(encoder, "embedding_dim", None)
            if embedding_dim is None:
                raise ValueError(f"{fn}: pass embedding_dim (the encoder has no "
                                 f"embedding_dim attribute)")
        self.encoder = encoder
        self.ranking = ranking
        self.shuffler = shuffler
        self.embedding_dim = int(embedding_dim)
        n = shuffler.count
        if ranking == "fixed_set":
            self.register_buffer("permutations", fixed_permutation_set(
                n, num_fixed_permutations, seed=seed))
            self.head = nn.Sequential(nn.Linear(n * self.embedding_dim, hidden_dim), nn.ReLU(),
                                      nn.Linear(hidden_dim, num_fixed_permutations))
        else:
            self.head = nn.Linear(self.embedding_dim, 1)
        if ranking == "soft_rank":
            self.regularization_strength = _positive(fn, "regularization_strength",
                                                     regularization_strength)
        if ranking == "perturbed":
            self.sigma = _positive(fn, "sigma", sigma)
            self.fenchel_young = FenchelYoungLoss(hard_ranks, num_samples=num_samples,
                                                  sigma=self.sigma, generator=None)

    def embed_patches(self, shuffled: ShuffledPatches) -> torch.Tensor:
        """(batch, n, f, t) patches -> (batch, n, d) embeddings, one encoder call."""
        patches = shuffled.patches
        batch, n = patches.shape[:2]
        embeddings = self.encoder(patches.reshape(batch * n, *patches.shape[2:]))
        return embeddings.reshape(batch, n, -1)

    def forward(self, spectrogram: torch.Tensor) -> PretextOutput:
        if self.ranking == "fixed_set":
            batch = self.shuffler.check(spectrogram).shape[0]
            labels = torch.randint(len(self.permutations), (batch,),
                                   generator=self.shuffler.generator).to(
                self.permutations.device)
            shuffled = self.shuffler(spectrogram, permutation=self.permutations[labels])
            logits = self.head(self.embed_patches(shuffled).flatten(1))
            loss = nn.functional.cross_entropy(logits, labels)
            predicted = (self.permutations[logits.argmax(dim=1)] + 1).to(shuffled.ranks.dtype)
            return PretextOutput(loss, predicted, shuffled.ranks, logits)
        shuffled = self.shuffler(spectrogram)
        scores = self.head(self.embed_patches(shuffled)).squeeze(-1)
        if self.ranking == "soft_rank":
            soft = soft_rank(scores, regularization_strength=self.regularization_strength)
            loss = ((soft - shuffled.ranks) ** 2).mean()
        else:
            loss = self.fenchel_young(scores, shuffled.ranks)
        with torch.no_grad():
            predicted = hard_ranks(scores.detach())
        return PretextOutput(loss, predicted, shuffled.ranks, scores)

    def extra_repr(self) -> str:
        extra = {"soft_rank": lambda: f"regularization_strength={self.regularization_strength}",
                 "perturbed": lambda: f"sigma={self.sigma}",
                 "fixed_set": lambda: f"num_fixed_permutations={len(self.permutations)}"}
        return f"ranking={self.ranking!r}, {self.shuffler!r}, {extra[self.ranking]()}"
