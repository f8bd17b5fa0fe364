"""The Frechet distance between two Gaussians, with a stable matrix square root."""

import numpy as np
from jaxtyping import Float


def _check_gaussian(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(
            f"mu{name} must have shape [D] and sigma{name} shape [D, D], got "
            f"{mu.shape} and {sigma.shape}."
        )
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"mu{name} and sigma{name} must be finite.")
    return mu, sigma


def sqrtm_psd(a: Float[np.ndarray, "D D"]) -> Float[np.ndarray, "D D"]:
    """The principal square root of a symmetric positive semi-definite matrix.

    With `a = V diag(w) V^T` (eigendecomposition of the symmetrised matrix),
    `sqrt(a) = V diag(sqrt(max(w, 0))) V^T`. Small negative eigenvalues from
    round-off are clipped to zero, so the result is always real and symmetric.

    Args:
        a: symmetric PSD matrix `[D, D]`.

    Returns:
        `float64` matrix `[D, D]` with `sqrtm_psd(a) @ sqrtm_psd(a) ~= a`.

    Example:
        >>> sqrtm_psd(np.diag([4.0, 9.0]))
        array([[2., 0.],
               [0., 3.]])
    """
    a = np.asarray(a, np.float64)
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(
    sigma1: Float[np.ndarray, "D D"], sigma2: Float[np.ndarray, "D D"]
) -> float:
    """`tr sqrt(sigma1 sigma2)` for symmetric PSD matrices, computed stably.

    `sigma1 sigma2` is not symmetric, but it is similar to the symmetric PSD
    matrix `M = sqrt(sigma1) sigma2 sqrt(sigma1)`, so both have the same
    non-negative eigenvalues `l_i` and `tr sqrt(sigma1 sigma2) = sum_i sqrt(l_i)`.
    Only symmetric eigendecompositions are used: no complex round-off, and no
    failure on singular covariances (fewer samples than dimensions).

    Args:
        sigma1: symmetric PSD matrix `[D, D]`.
        sigma2: symmetric PSD matrix `[D, D]`.

    Returns:
        The trace, a non-negative float.
    """
    root1 = sqrtm_psd(sigma1)
    m = root1 @ np.asarray(sigma2, np.float64) @ root1
    eigenvalues = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance(
    mu1: Float[np.ndarray, " D"],
    sigma1: Float[np.ndarray, "D D"],
    mu2: Float[np.ndarray, " D"],
    sigma2: Float[np.ndarray, "D D"],
) -> float:
    """The squared Frechet (2-Wasserstein) distance between two Gaussians.

        d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr sqrt(sigma1 sigma2)

    This is FID when the Gaussians are fitted to Inception pool features
    (Heusel et al., 2017). Computed in float64 with `trace_sqrt_product`.

    Args:
        mu1: mean `[D]` of the first Gaussian.
        sigma1: covariance `[D, D]` of the first Gaussian (symmetric PSD).
        mu2: mean `[D]` of the second Gaussian.
        sigma2: covariance `[D, D]` of the second Gaussian.

    Returns:
        The distance, a float >= 0 (tiny negative round-off is clipped to 0).

    Raises:
        ValueError: for mismatched shapes or non-finite values.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
        4.0
    """
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "1")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"mu1 and mu2 must have the same dimension, got {mu1.shape} and "
            f"{mu2.shape}."
        )
    diff = mu1 - mu2
    distance = (
        diff @ diff
        + np.trace(sigma1)
        + np.trace(sigma2)
        - 2.0 * trace_sqrt_product(sigma1, sigma2)
    )
    return float(max(distance, 0.0))
