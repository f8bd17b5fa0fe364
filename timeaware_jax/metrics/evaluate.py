"""One entry point to score generated images: FID and IS, or a small-data FD."""

import os
from collections.abc import Callable

import numpy as np
from jaxtyping import UInt8

from timeaware_jax.data import DATASETS
from timeaware_jax.metrics.extractor import (
    FeatureExtractor,
    inception_extractor,
    run_extractor,
)
from timeaware_jax.metrics.frechet import frechet_distance
from timeaware_jax.metrics.inception_score import inception_score
from timeaware_jax.metrics.reference import reference_stats
from timeaware_jax.metrics.small_data import METRIC_DATASETS, small_data_extractor

METRICS = ("fd-digits", "fd-fashion", "fid")


def evaluate_images(
    images_uint8: UInt8[np.ndarray, "N H W C"],
    *,
    metric: str,
    dataset: str | None = None,
    weights: str | os.PathLike | None = None,
    batch_size: int = 50,
    splits: int = 10,
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    inception: FeatureExtractor | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Score generated images against the training split of a data set.

    - `"fd-digits"` / `"fd-fashion"`: the small-data Frechet distance (see
      `timeaware_jax.metrics.small_data`; not FID) against the training split
      of digits / Fashion-MNIST. Returns `{"fd": ...}`.
    - `"fid"`: FID against the training split of `dataset` and the Inception
      Score of the images with `splits` splits. Returns `{"fid": ...,
      "is_mean": ..., "is_std": ...}`.

    Reference statistics are computed once and cached (`reference_stats`).

    Args:
        images_uint8: generated images, `uint8 [N, H, W, C]`. For the
            small-data distances, of the data set's shape (8x8x1 or 28x28x1);
            for FID any size with 1 or 3 channels.
        metric: one of `METRICS`.
        dataset: the reference data set; for `"fid"` required (a name in
            `timeaware_jax.data.DATASETS`); for the small-data distances
            optional and, if given, it must match the metric.
        weights: FID Inception weights (see `find_inception_weights`).
        batch_size: images per network call for FID.
        splits: Inception Score splits (at most N).
        cache_dir: the cache root (default `$TIMEAWARE_CACHE`, else
            `~/.cache/timeaware_jax`).
        data_dir: passed to `load_dataset`.
        inception: an already built Inception `FeatureExtractor` (overrides
            `weights`), e.g. `inception_extractor(params=...)`.
        progress: called with the number of images done after each batch.

    Returns:
        A dict of floats, as above.

    Raises:
        ValueError: for an unknown metric, a mismatched or missing data set, or
            images of the wrong dtype or shape.
        FileNotFoundError: when the Inception weights are missing (the message
            says how to obtain them).

    Example:
        >>> from timeaware_jax.data import load_dataset
        >>> images = load_dataset("digits", "test").images
        >>> evaluate_images(images, metric="fd-digits")  # doctest: +SKIP
        {'fd': ...}
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    if metric in METRIC_DATASETS:
        expected = METRIC_DATASETS[metric]
        if dataset not in (None, expected):
            raise ValueError(
                f"dataset must be {expected!r} (or None) for metric {metric!r}, "
                f"got {dataset!r}."
            )
        extractor = small_data_extractor(
            expected, cache_dir=cache_dir, data_dir=data_dir
        )
        stats, _ = run_extractor(extractor, images_uint8, progress=progress)
        ref = reference_stats(
            expected, extractor, cache_dir=cache_dir, data_dir=data_dir
        )
        return {"fd": frechet_distance(stats.mean, stats.cov, ref.mean, ref.cov)}

    if dataset not in DATASETS:
        raise ValueError(
            f"dataset must be one of {DATASETS} for metric 'fid', got {dataset!r}."
        )
    extractor = inception or inception_extractor(
        weights, batch_size=batch_size, cache_root=cache_dir
    )
    stats, outputs = run_extractor(
        extractor, images_uint8, collect=("logits_unbiased",), progress=progress
    )
    ref = reference_stats(dataset, extractor, cache_dir=cache_dir, data_dir=data_dir)
    is_mean, is_std = inception_score(
        outputs["logits_unbiased"], splits=min(splits, len(images_uint8))
    )
    return {
        "fid": frechet_distance(stats.mean, stats.cov, ref.mean, ref.cov),
        "is_mean": is_mean,
        "is_std": is_std,
    }
