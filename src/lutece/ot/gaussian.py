"""Optimal transport between Gaussians and between Gaussian mixtures.

* :func:`gaussian_w2`: the squared 2-Wasserstein distance between N(m0, C0) and N(m1, C1),
  in closed form (Dowson & Landau 1982; Olkin & Pukelsheim 1982; Peyré & Cuturi 2019,
  Remark 2.31)::

      W2^2 = ||m0 - m1||^2 + B^2(C0, C1),
      B^2(C0, C1) = tr(C0 + C1 - 2 (C0^{1/2} C1 C0^{1/2})^{1/2})      (Bures metric, squared)

* :func:`gaussian_map`: the optimal (Brenier) map between them, affine, T(x) = A x + b with
  A = C0^{-1/2} (C0^{1/2} C1 C0^{1/2})^{1/2} C0^{-1/2} and b = m1 - A m0 (Knott & Smith
  1984; Peyré & Cuturi 2019, Remark 2.29); :func:`apply_gaussian_map` applies it.
* :class:`GaussianMixture`: a Gaussian mixture model fitted by EM (Dempster, Laird & Rubin
  1977), k-means++ initialization (Arthur & Vassilvitskii 2007), scikit-learn's interface.
* :func:`gmm_w2`: the mixture Wasserstein distance MW2 of Delon & Desolneux (2020, "A
  Wasserstein-type distance in the space of Gaussian mixture models", SIAM J. Imaging
  Sci., eq. 4.1): OT restricted to couplings that are themselves Gaussian mixtures, which
  reduces to a discrete OT problem between the components with cost W2^2 between them::

      MW2^2(mu0, mu1) = min_{w in Pi(pi0, pi1)} sum_kl w_kl W2^2(mu0_k, mu1_l).

Matrix square roots are symmetric, by ``eigh`` with negative eigenvalues (round-off on
singular covariances) clamped to 0, and differentiated by solving the Sylvester equation
X dX + dX X = dC in the eigenbasis: dX_ij = dC_ij / (s_i + s_j). Unlike the generic
eigenvector gradient (1 / (s_i - s_j)) this stays finite for repeated eigenvalues
(isotropic covariances included).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .._validation import check_choice, check_finite, check_tensor, data_checks_enabled
from .solvers.exact import exact_ot

__all__ = [
    "gaussian_w2",
    "gaussian_map",
    "apply_gaussian_map",
    "GaussianMixture",
    "gmm_w2",
]


# --------------------------------------------------------------------------- square roots


class _SymmetricSqrt(torch.autograd.Function):
    """X = C^{1/2} = U diag(sqrt(max(lambda, 0))) U^T for symmetric C = U diag(lambda) U^T.

    Backward (the adjoint of the Sylvester solve X dX + dX X = dC):
    grad_C = U [(U^T grad_X U)_ij / (s_i + s_j)] U^T. Where s_i + s_j vanishes (two null
    eigenvalues: C singular) the square root is not differentiable; the denominator is
    floored at max(eps * max_i s_i, sqrt(tiny)) of the dtype, which keeps the gradient
    finite but large in those directions.
    """

    @staticmethod
    def forward(matrix):  # type: ignore[override]
        eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
        roots = eigenvalues.clamp(min=0).sqrt()
        return (eigenvectors * roots[..., None, :]) @ eigenvectors.mT, roots, eigenvectors

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        _, roots, eigenvectors = output
        ctx.mark_non_differentiable(roots, eigenvectors)
        ctx.save_for_backward(roots, eigenvectors)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_root, _grad_roots, _grad_vectors):  # type: ignore[override]
        roots, vectors = ctx.saved_tensors
        info = torch.finfo(roots.dtype)
        floor = (info.eps * roots.amax(-1)).clamp(min=math.sqrt(info.tiny))
        denominator = (roots[..., :, None] + roots[..., None, :]).maximum(
            floor[..., None, None])
        inner = (vectors.mT @ grad_root @ vectors) / denominator
        return vectors @ inner @ vectors.mT


def _symmetrize(matrix: torch.Tensor) -> torch.Tensor:
    return (matrix + matrix.mT) / 2


def _sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric PSD square root of (matrix + matrix^T) / 2, (..., d, d)."""
    return _SymmetricSqrt.apply(_symmetrize(matrix))[0]


def _trace(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.diagonal(dim1=-2, dim2=-1).sum(-1)


def _bures_w2(m0: torch.Tensor, root0: torch.Tensor, C0: torch.Tensor, m1: torch.Tensor,
              C1: torch.Tensor) -> torch.Tensor:
    """||m0 - m1||^2 + tr(C0 + C1 - 2 (root0 C1 root0)^{1/2}), root0 = C0^{1/2}, clamped at 0
    (round-off can make it slightly negative for equal Gaussians). No checks."""
    cross = _sqrtm(root0 @ C1 @ root0)
    bures = _trace(C0) + _trace(C1) - 2 * _trace(cross)
    return (((m0 - m1) ** 2).sum(-1) + bures).clamp(min=0)


# --------------------------------------------------------------------------- validation


def _tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of the symmetry, PSD and weight checks: sqrt(eps) of the dtype
    (3.5e-4 in float32, 1.5e-8 in float64)."""
    return math.sqrt(torch.finfo(dtype).eps)


def _check_real(fn: str, name: str, value: object, min_ndim: int) -> torch.Tensor:
    value = check_tensor(fn, name, value, min_ndim=min_ndim)
    if value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64 (eigh needs them), got "
                        f"{value.dtype}; convert it first, e.g. {name}.double()")
    return check_finite(fn, name, value)


def _check_covariance(fn: str, name: str, cov: torch.Tensor, *,
                      definite: bool = False) -> None:
    """Require (..., d, d), symmetric and PSD (or positive definite), relative to the
    matrix's scale with :func:`_tolerance`."""
    if cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{fn}: {name} must be (..., d, d) square matrices, got shape "
                         f"{tuple(cov.shape)}")
    if not data_checks_enabled() or not cov.numel():
        return
    tol = _tolerance(cov.dtype)
    detached = cov.detach()
    scale = detached.abs().amax((-2, -1))
    asymmetry = (detached - detached.mT).abs().amax((-2, -1))
    if bool((asymmetry > tol * scale).any()):
        raise ValueError(f"{fn}: {name} must be symmetric, got max |{name} - {name}^T| = "
                         f"{float(asymmetry.max()):.3g} for entries up to "
                         f"{float(scale.max()):.3g}")
    eigenvalues = torch.linalg.eigvalsh(_symmetrize(detached))
    largest = eigenvalues[..., -1].abs()
    smallest = eigenvalues[..., 0]
    if bool((smallest < -tol * largest).any()):
        raise ValueError(f"{fn}: {name} must be symmetric positive semi-definite, got a "
                         f"smallest eigenvalue of {float(smallest.min()):.3g}")
    if definite:
        threshold = cov.shape[-1] * torch.finfo(cov.dtype).eps * largest
        if bool((smallest <= threshold).any()) or bool((largest == 0).any()):
            raise ValueError(f"{fn}: {name} must be positive definite, got a smallest "
                             f"eigenvalue of {float(smallest.min()):.3g} (numerically "
                             f"singular)")


def _check_gaussians(fn: str, m0: object, C0: object, m1: object, C1: object
                     ) -> tuple[torch.Size, torch.dtype]:
    """Shapes, dtypes and covariance checks shared by gaussian_w2 and gaussian_map; return
    the broadcast batch shape and the common dtype."""
    m0 = _check_real(fn, "m0", m0, 1)
    m1 = _check_real(fn, "m1", m1, 1)
    C0 = _check_real(fn, "C0", C0, 2)
    C1 = _check_real(fn, "C1", C1, 2)
    dims = {m0.shape[-1], m1.shape[-1], C0.shape[-1], C0.shape[-2], C1.shape[-1],
            C1.shape[-2]}
    if len(dims) != 1:
        raise ValueError(f"{fn}: expected m0, m1 of shape (..., d) and C0, C1 of shape "
                         f"(..., d, d) with the same d, got {tuple(m0.shape)}, "
                         f"{tuple(m1.shape)}, {tuple(C0.shape)}, {tuple(C1.shape)}")
    if len({m0.dtype, m1.dtype, C0.dtype, C1.dtype}) != 1:
        raise TypeError(f"{fn}: m0, C0, m1, C1 must share a dtype, got {m0.dtype}, "
                        f"{C0.dtype}, {m1.dtype}, {C1.dtype}")
    try:
        batch = torch.broadcast_shapes(m0.shape[:-1], m1.shape[:-1], C0.shape[:-2],
                                       C1.shape[:-2])
    except RuntimeError:
        raise ValueError(f"{fn}: the leading (batch) dimensions do not broadcast: m0 "
                         f"{tuple(m0.shape)}, m1 {tuple(m1.shape)}, C0 {tuple(C0.shape)}, "
                         f"C1 {tuple(C1.shape)}") from None
    return batch, m0.dtype


# --------------------------------------------------------------------------- Gaussians


def gaussian_w2(m0: torch.Tensor, C0: torch.Tensor, m1: torch.Tensor,
                C1: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between N(m0, C0) and N(m1, C1) (Bures-Wasserstein).

    W2^2 = ||m0 - m1||^2 + tr(C0 + C1 - 2 (C0^{1/2} C1 C0^{1/2})^{1/2})
    (Dowson & Landau 1982; Olkin & Pukelsheim 1982). POT's
    ``ot.gaussian.bures_wasserstein_distance`` returns its square root.

    Args:
        m0, m1: (..., d) means.
        C0, C1: (..., d, d) symmetric positive semi-definite covariances.
        Leading dimensions broadcast; float32 or float64, all the same dtype.

    Returns:
        (...) squared distances, in the squared units of the means, >= 0.

    Singular covariances are allowed (degenerate Gaussians): eigenvalues below 0 from
    round-off are clamped to 0. The square root turns eigenvalues of round-off size
    (eps * ||C||) into sqrt(eps * ||C||), so the value is then accurate to about sqrt(eps)
    relative (1e-8 in float64, 3e-4 in float32) instead of eps. The Bures term is
    not differentiable where a covariance (or C0^{1/2} C1 C0^{1/2}) is singular, its true
    gradient being unbounded there; the returned gradient is then finite but large (see
    :class:`_SymmetricSqrt`). Gradients are exact for positive definite covariances,
    repeated eigenvalues included.

    Raises:
        TypeError: non-tensors or dtypes other than float32 / float64, or mixed dtypes.
        ValueError: shapes that do not match or broadcast, NaN / inf entries, covariances
            that are not symmetric or not PSD (relative tolerance sqrt(eps) of the dtype).
    """
    fn = "gaussian_w2"
    _check_gaussians(fn, m0, C0, m1, C1)
    _check_covariance(fn, "C0", C0)
    _check_covariance(fn, "C1", C1)
    return _bures_w2(m0, _sqrtm(C0), C0, m1, C1)


def gaussian_map(m0: torch.Tensor, C0: torch.Tensor, m1: torch.Tensor,
                 C1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal (Brenier) map T(x) = A x + b from N(m0, C0) to N(m1, C1).

    A = C0^{-1/2} (C0^{1/2} C1 C0^{1/2})^{1/2} C0^{-1/2},  b = m1 - A m0
    (Knott & Smith 1984; Peyré & Cuturi 2019, Remark 2.29). A is symmetric PSD, so T is
    the gradient of the convex potential x^T A x / 2 + b^T x, and A C0 A = C1. Same as
    POT's ``ot.gaussian.bures_wasserstein_mapping``.

    Args:
        m0, m1: (..., d) means; C0: (..., d, d) symmetric positive definite (the map from a
            degenerate Gaussian is not unique); C1: (..., d, d) symmetric PSD. Leading
            dimensions broadcast; float32 or float64.

    Returns:
        A: (..., d, d), b: (..., d); differentiable. C0^{-1/2} is applied by two linear
        solves with C0^{1/2}, so A loses accuracy as C0's condition number grows.

    Raises:
        ValueError: as :func:`gaussian_w2`, and for a C0 that is numerically singular.
    """
    fn = "gaussian_map"
    _check_gaussians(fn, m0, C0, m1, C1)
    _check_covariance(fn, "C0", C0, definite=True)
    _check_covariance(fn, "C1", C1)
    root0 = _sqrtm(C0)
    cross = _sqrtm(root0 @ C1 @ root0)
    left = torch.linalg.solve(root0, cross)  # C0^{-1/2} cross
    A = _symmetrize(torch.linalg.solve(root0, left.mT).mT)  # left C0^{-1/2}
    b = m1 - (A @ m0.unsqueeze(-1)).squeeze(-1)
    return A, b


def apply_gaussian_map(x: torch.Tensor, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """T(x) = A x + b for points x.

    Args:
        x: (..., n, d) points (or (d,), one point); A: (..., d, d); b: (..., d), with
            leading dimensions that broadcast against x's.

    Returns:
        (..., n, d) (or (d,)) mapped points: x A^T + b.
    """
    fn = "apply_gaussian_map"
    x = check_tensor(fn, "x", x, min_ndim=1)
    A = check_tensor(fn, "A", A, min_ndim=2)
    b = check_tensor(fn, "b", b, min_ndim=1)
    d = x.shape[-1]
    if A.shape[-2:] != (d, d) or b.shape[-1] != d:
        raise ValueError(f"{fn}: expected x (..., n, d), A (..., d, d), b (..., d) with the "
                         f"same d, got {tuple(x.shape)}, {tuple(A.shape)}, "
                         f"{tuple(b.shape)}")
    if x.ndim == 1:
        return A @ x + b
    return x @ A.mT + b.unsqueeze(-2)


# --------------------------------------------------------------------------- mixtures


def _gaussian_log_density(x: torch.Tensor, means: torch.Tensor,
                          cholesky: torch.Tensor) -> torch.Tensor:
    """log N(x_i | means_k, L_k L_k^T) for x (n, d), means (K, d), cholesky (K, d, d):
    (n, K). -1/2 (d log 2 pi + log det C_k + ||L_k^{-1} (x_i - means_k)||^2)."""
    d = x.shape[-1]
    centred = (x[None, :, :] - means[:, None, :]).mT  # (K, d, n)
    whitened = torch.linalg.solve_triangular(cholesky, centred, upper=False)
    squared = (whitened ** 2).sum(-2)  # (K, n)
    log_det = 2 * cholesky.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,)
    return (-0.5 * (d * math.log(2 * math.pi) + log_det[:, None] + squared)).mT


class GaussianMixture(nn.Module):
    """Gaussian mixture model sum_k pi_k N(m_k, C_k), fitted by EM, scikit-learn-like.

    Args:
        n_components: K >= 1.
        covariance_type: "full" (one C_k each), "diag" (diagonal C_k) or "spherical"
            (C_k = v_k I). Whatever the type, ``covariances_`` holds full (K, d, d)
            matrices.
        reg_covar: >= 0, added to the covariances' diagonals at every M-step (units of
            x squared), keeping them positive definite.
        max_iter: >= 1 EM iterations.
        tol: >= 0; EM stops when the mean log-likelihood per sample (nats) changes by less.
        seed: seeds the initialization (a torch.Generator on x's device).
        init_params: "k-means++" (Arthur & Vassilvitskii 2007 seeding; each sample then
            starts with the responsibility 1 for its nearest seed) or "random_from_data"
            (K distinct samples as seeds, the same nearest-seed start).

    Learned state (None / defaults before :meth:`fit`): ``weights_`` (K,),
    ``means_`` (K, d), ``covariances_`` (K, d, d) (buffers, so ``.to`` moves them),
    ``converged_`` (bool), ``n_iter_`` (int), ``lower_bound_`` (mean log-likelihood per
    sample at the last E-step). ``forward(x)`` is :meth:`log_prob`.
    """

    def __init__(self, n_components: int, covariance_type: str = "full",
                 reg_covar: float = 1e-6, max_iter: int = 100, tol: float = 1e-4,
                 seed: int = 0, init_params: str = "k-means++") -> None:
        super().__init__()
        fn = "GaussianMixture"
        if isinstance(n_components, bool) or not isinstance(n_components, int) \
                or n_components < 1:
            raise ValueError(f"{fn}: n_components must be an int >= 1, got {n_components!r}")
        check_choice(fn, "covariance_type", covariance_type, ("full", "diag", "spherical"))
        check_choice(fn, "init_params", init_params, ("k-means++", "random_from_data"))
        for name, value in (("reg_covar", reg_covar), ("tol", tol)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"{fn}: {name} must be a finite number >= 0, got {value!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"{fn}: max_iter must be an int >= 1, got {max_iter!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__}")
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)
        self.max_iter = max_iter
        self.tol = float(tol)
        self.seed = seed
        self.init_params = init_params
        self.weights_: torch.Tensor | None
        self.means_: torch.Tensor | None
        self.covariances_: torch.Tensor | None
        self.register_buffer("weights_", None)
        self.register_buffer("means_", None)
        self.register_buffer("covariances_", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Forget the learned state."""
        self.weights_ = self.means_ = self.covariances_ = None
        self.converged_ = False
        self.n_iter_ = 0
        self.lower_bound_ = -math.inf

    def extra_repr(self) -> str:
        return (f"n_components={self.n_components}, covariance_type={self.covariance_type!r}, "
                f"reg_covar={self.reg_covar:g}, max_iter={self.max_iter}, tol={self.tol:g}, "
                f"seed={self.seed}, init_params={self.init_params!r}")

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_parameters(cls, weights: torch.Tensor, means: torch.Tensor,
                        covariances: torch.Tensor) -> GaussianMixture:
        """A mixture with the given parameters (kept as given, gradients included).

        Args:
            weights: (K,) >= 0, summing to 1 (relative tolerance sqrt(eps) of the dtype).
            means: (K, d). covariances: (K, d, d) symmetric positive definite.
            All float32 or float64, the same dtype.
        """
        fn = "GaussianMixture.from_parameters"
        weights = _check_real(fn, "weights", weights, 1)
        means = _check_real(fn, "means", means, 2)
        covariances = _check_real(fn, "covariances", covariances, 3)
        K, d = means.shape[-2], means.shape[-1]
        if weights.shape != (K,) or means.ndim != 2 or covariances.shape != (K, d, d):
            raise ValueError(f"{fn}: expected weights (K,), means (K, d), covariances "
                             f"(K, d, d), got {tuple(weights.shape)}, {tuple(means.shape)}, "
                             f"{tuple(covariances.shape)}")
        if K < 1:
            raise ValueError(f"{fn}: a mixture needs at least one component, got K = 0")
        if len({weights.dtype, means.dtype, covariances.dtype}) != 1:
            raise TypeError(f"{fn}: weights, means, covariances must share a dtype, got "
                            f"{weights.dtype}, {means.dtype}, {covariances.dtype}")
        if data_checks_enabled():
            if bool((weights < 0).any()):
                raise ValueError(f"{fn}: weights must be >= 0, got a minimum of "
                                 f"{float(weights.min()):.3g}")
            total = float(weights.detach().sum())
            if abs(total - 1) > _tolerance(weights.dtype):
                raise ValueError(f"{fn}: weights must sum to 1, got {total:.8g}; divide "
                                 f"them by their sum")
        _check_covariance(fn, "covariances", covariances, definite=True)
        model = cls(K, covariance_type="full")
        model.weights_, model.means_, model.covariances_ = weights, means, covariances
        return model

    # ------------------------------------------------------------------ EM

    def _initial_responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """(n, K) one-hot responsibilities of each sample's nearest seed."""
        n, K = x.shape[0], self.n_components
        generator = torch.Generator(device=x.device).manual_seed(self.seed)
        if self.init_params == "random_from_data":
            seeds = x[torch.randperm(n, generator=generator, device=x.device)[:K]]
        else:  # k-means++: each new seed drawn with probability proportional to D(x)^2
            first = torch.randint(n, (1,), generator=generator, device=x.device)
            seeds = x[first]
            nearest = ((x - seeds) ** 2).sum(-1)
            for _ in range(1, K):
                total = nearest.sum()
                probabilities = nearest / total if float(total) > 0 else torch.ones_like(
                    nearest)
                index = torch.multinomial(probabilities, 1, generator=generator)
                seeds = torch.cat([seeds, x[index]])
                nearest = torch.minimum(nearest, ((x - x[index]) ** 2).sum(-1))
        labels = torch.cdist(x, seeds).argmin(-1)
        return nn.functional.one_hot(labels, K).to(x.dtype)

    def _m_step(self, x: torch.Tensor, responsibilities: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """pi_k = N_k / n, m_k = sum_i r_ik x_i / N_k,
        C_k = sum_i r_ik (x_i - m_k)(x_i - m_k)^T / N_k + reg_covar I (Bishop 2006, 9.24-9.26),
        N_k = sum_i r_ik (+ 10 eps, for empty components)."""
        n, d = x.shape
        counts = responsibilities.sum(0) + 10 * torch.finfo(x.dtype).eps
        means = responsibilities.mT @ x / counts[:, None]
        centred = x[None, :, :] - means[:, None, :]  # (K, n, d)
        weighted = responsibilities.mT[:, :, None] * centred
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        if self.covariance_type == "full":
            covariances = weighted.mT @ centred / counts[:, None, None]
        else:
            variances = (weighted * centred).sum(1) / counts[:, None]  # (K, d)
            if self.covariance_type == "spherical":
                variances = variances.mean(-1, keepdim=True).expand(-1, d)
            covariances = torch.diag_embed(variances)
        return counts / n, means, covariances + self.reg_covar * eye

    def _log_weighted(self, x: torch.Tensor, weights: torch.Tensor, means: torch.Tensor,
                      covariances: torch.Tensor, fn: str) -> torch.Tensor:
        """(n, K) log pi_k + log N(x_i | m_k, C_k)."""
        cholesky, info = torch.linalg.cholesky_ex(covariances)
        if bool((info > 0).any()):
            raise ValueError(f"{fn}: a covariance is not positive definite (Cholesky "
                             f"failed); raise reg_covar")
        return weights.log() + _gaussian_log_density(x, means, cholesky)

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> GaussianMixture:
        """Fit by EM (Dempster, Laird & Rubin 1977) from the initialization above.

        Args:
            x: (n, d) samples, float32 or float64, n >= n_components.

        Returns:
            self, with the learned state set (the parameters carry no gradient). Warns
            (RuntimeWarning) when EM stops at max_iter before converging.
        """
        fn = "GaussianMixture.fit"
        x = _check_real(fn, "x", x, 2)
        if x.ndim != 2:
            raise ValueError(f"{fn}: x must be (n, d) samples, got shape {tuple(x.shape)}")
        if x.shape[0] < self.n_components:
            raise ValueError(f"{fn}: x has {x.shape[0]} samples, fewer than n_components="
                             f"{self.n_components}; pass at least {self.n_components}")
        x = x.detach()
        weights, means, covariances = self._m_step(x, self._initial_responsibilities(x))
        previous = -math.inf
        self.converged_ = False
        for iteration in range(1, self.max_iter + 1):
            log_weighted = self._log_weighted(x, weights, means, covariances, fn)
            log_norm = torch.logsumexp(log_weighted, -1, keepdim=True)
            bound = float(log_norm.mean())
            weights, means, covariances = self._m_step(x, (log_weighted - log_norm).exp())
            self.n_iter_, self.lower_bound_ = iteration, bound
            if abs(bound - previous) < self.tol:
                self.converged_ = True
                break
            previous = bound
        if not self.converged_:
            warnings.warn(f"{fn}: EM did not converge in {self.max_iter} iterations (last "
                          f"change {abs(bound - previous):.3g} >= tol {self.tol:g}); raise "
                          f"max_iter or tol", RuntimeWarning, stacklevel=2)
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        return self

    # ------------------------------------------------------------------ inference

    def _require_fitted(self, fn: str) -> None:
        if self.means_ is None:
            raise RuntimeError(f"{fn}: the mixture is not fitted; call fit(x) first or "
                               f"build it with GaussianMixture.from_parameters")

    @property
    def dim(self) -> int:
        """d, the dimension of the samples (after fitting)."""
        self._require_fitted("GaussianMixture.dim")
        return self.means_.shape[-1]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log sum_k pi_k N(x | m_k, C_k), (..., d) -> (...), in nats; differentiable
        w.r.t. x and the parameters."""
        fn = "GaussianMixture.log_prob"
        self._require_fitted(fn)
        x = check_tensor(fn, "x", x, min_ndim=1)
        if x.shape[-1] != self.dim:
            raise ValueError(f"{fn}: x must be (..., {self.dim}), got shape "
                             f"{tuple(x.shape)}")
        flat = x.reshape(-1, self.dim).to(self.means_.dtype)
        log_weighted = self._log_weighted(flat, self.weights_, self.means_,
                                          self.covariances_, fn)
        return torch.logsumexp(log_weighted, -1).reshape(x.shape[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples, (n, d), in random component order: component k with probability
        pi_k, then m_k + L_k z with z ~ N(0, I) and C_k = L_k L_k^T (reparameterized:
        differentiable w.r.t. means and covariances, not weights)."""
        fn = "GaussianMixture.sample"
        self._require_fitted(fn)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{fn}: n must be an int >= 0, got {n!r}")
        means = self.means_
        labels = torch.multinomial(self.weights_.detach(), n, replacement=True,
                                   generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=means.dtype,
                            device=means.device)
        cholesky = torch.linalg.cholesky(self.covariances_)
        return means[labels] + (cholesky[labels] @ noise[:, :, None]).squeeze(-1)


def gmm_w2(gmm0: GaussianMixture, gmm1: GaussianMixture, *,
           return_coupling: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Squared mixture Wasserstein distance MW2^2 (Delon & Desolneux 2020, eq. 4.1 / 4.4).

    MW2^2 = min_{w in Pi(pi0, pi1)} sum_kl w_kl W2^2(N(m0_k, C0_k), N(m1_l, C1_l)):
    exact discrete OT (:func:`lutece.ot.exact_ot`) between the K0 and K1 components, with
    the :func:`gaussian_w2` cost and the mixture weights as marginals. It is a distance on
    Gaussian mixtures, an upper bound of W2^2 between the mixture densities, and equals
    :func:`gaussian_w2` for single Gaussians.

    Args:
        gmm0, gmm1: fitted (or :meth:`GaussianMixture.from_parameters`) mixtures on the
            same d, same dtype.
        return_coupling: also return the optimal coupling w, (K0, K1).

    Returns:
        () MW2^2 (units of the samples squared), differentiable w.r.t. the means and
        covariances (through the cost, gradient sum_kl w_kl dW2^2_kl) and the weights (the
        dual potentials); and, if asked, the coupling (no gradient).
    """
    fn = "gmm_w2"
    for name, gmm in (("gmm0", gmm0), ("gmm1", gmm1)):
        if not isinstance(gmm, GaussianMixture):
            raise TypeError(f"{fn}: {name} must be a GaussianMixture, got "
                            f"{type(gmm).__name__}")
        gmm._require_fitted(f"{fn}: {name}")
    if gmm0.dim != gmm1.dim:
        raise ValueError(f"{fn}: the mixtures live in different dimensions, {gmm0.dim} and "
                         f"{gmm1.dim}")
    if gmm0.means_.dtype != gmm1.means_.dtype:
        raise TypeError(f"{fn}: the mixtures have different dtypes, {gmm0.means_.dtype} "
                        f"and {gmm1.means_.dtype}")
    C0, C1 = gmm0.covariances_, gmm1.covariances_
    cost = _bures_w2(gmm0.means_[:, None], _sqrtm(C0)[:, None], C0[:, None],
                     gmm1.means_[None], C1[None])  # (K0, K1)
    out = exact_ot(gmm0.weights_, gmm1.weights_, cost)
    return (out.cost, out.plan) if return_coupling else out.cost
