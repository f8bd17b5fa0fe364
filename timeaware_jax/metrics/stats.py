"""Streaming mean and covariance of features, accumulated in float64."""

import dataclasses
import os

import numpy as np
from jaxtyping import Float


@dataclasses.dataclass(frozen=True)
class GaussianStats:
    """Running count, mean and scatter matrix of feature vectors.

    The scatter matrix is `sum_i (x_i - mean)(x_i - mean)^T`; the covariance
    is `scatter / (count - 1)`, the unbiased estimate that `np.cov` and the
    reference FID code use. Batches are merged with the parallel update of
    Chan, Golub and LeVeque (1979):

        n = n_a + n_b,   delta = mean_b - mean_a,
        mean = mean_a + delta * n_b / n,
        scatter = scatter_a + scatter_b + outer(delta, delta) * n_a * n_b / n,

    which is exact, order-independent up to round-off, and works on data that
    never fits in memory at once.

    Attributes:
        count: number of feature vectors seen.
        mean: `float64 [D]`.
        scatter: `float64 [D, D]`.

    Example:
        >>> stats = GaussianStats.empty(3)
        >>> for batch in np.split(np.random.default_rng(0).normal(size=(100, 3)), 4):
        ...     stats = stats.update(batch)
        >>> stats.count
        100
    """

    count: int
    mean: np.ndarray
    scatter: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> "GaussianStats":
        """Statistics of zero vectors of dimension `dim`."""
        return cls(0, np.zeros(dim, np.float64), np.zeros((dim, dim), np.float64))

    @classmethod
    def from_features(cls, features: Float[np.ndarray, "N D"]) -> "GaussianStats":
        """Statistics of one batch of features `[N, D]`."""
        x = np.asarray(features, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must have shape [N, D], got {x.shape}.")
        if x.shape[0] == 0:
            return cls.empty(x.shape[1])
        mean = x.mean(axis=0)
        centered = x - mean
        return cls(x.shape[0], mean, centered.T @ centered)

    @property
    def dim(self) -> int:
        """The feature dimension `D`."""
        return int(self.mean.shape[0])

    @property
    def cov(self) -> np.ndarray:
        """The unbiased covariance `scatter / (count - 1)`, `float64 [D, D]`."""
        if self.count < 2:
            raise ValueError(
                f"the covariance needs at least 2 feature vectors, got {self.count}."
            )
        return self.scatter / (self.count - 1)

    def merge(self, other: "GaussianStats") -> "GaussianStats":
        """The statistics of the union of the two sets of feature vectors."""
        if other.dim != self.dim:
            raise ValueError(
                f"other must have dimension {self.dim}, got dimension {other.dim}."
            )
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        scatter = (
            self.scatter
            + other.scatter
            + np.outer(delta, delta) * (self.count * other.count / n)
        )
        return GaussianStats(n, mean, scatter)

    def update(self, features: Float[np.ndarray, "N D"]) -> "GaussianStats":
        """The statistics after adding a batch of features `[N, D]`."""
        batch = GaussianStats.from_features(features)
        if batch.dim != self.dim:
            raise ValueError(
                f"features must have shape [N, {self.dim}], got {np.shape(features)}."
            )
        return self.merge(batch)

    def save(self, path: str | os.PathLike, **metadata: str) -> None:
        """Write `mu`, `sigma` (as in pytorch-fid's .npz files), count and scatter."""
        np.savez(
            path,
            mu=self.mean,
            sigma=self.cov,
            count=np.int64(self.count),
            scatter=self.scatter,
            **{f"meta_{k}": np.str_(v) for k, v in metadata.items()},
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GaussianStats":
        """Read statistics written by `save`, or a pytorch-fid `mu`/`sigma` file.

        A file with only `mu` and `sigma` gives a `GaussianStats` whose
        covariance is `sigma` (its count is taken as 2, the only count for
        which the stored scatter equals `sigma`; do not merge it).
        """
        with np.load(path) as data:
            if "scatter" in data:
                return cls(int(data["count"]), data["mu"], data["scatter"])
            if "mu" in data and "sigma" in data:
                return cls(2, data["mu"].astype(np.float64), data["sigma"] * 1.0)
        raise ValueError(
            f"path {str(path)!r} holds neither GaussianStats nor mu/sigma arrays."
        )
