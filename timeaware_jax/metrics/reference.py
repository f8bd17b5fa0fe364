"""Reference feature statistics of a data set, cached on disk."""

import os
import pathlib
import tempfile
from collections.abc import Callable

from timeaware_jax.data import load_dataset
from timeaware_jax.metrics.extractor import FeatureExtractor, run_extractor
from timeaware_jax.metrics.stats import GaussianStats
from timeaware_jax.metrics.weights import cache_dir as default_cache_dir


def reference_path(
    dataset: str,
    extractor_name: str,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
) -> pathlib.Path:
    """The cache file of the statistics of `dataset`/`split` under an extractor."""
    root = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "reference" / f"{dataset}-{split}-{extractor_name}.npz"


def reference_stats(
    dataset: str,
    extractor: FeatureExtractor,
    *,
    split: str = "train",
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> GaussianStats:
    """Feature statistics of a whole data set split, computed once and cached.

    Follows the FID conventions: the `uint8` images of the training split, all
    of them, through the extractor's own preprocessing. The result is stored
    as `<cache>/reference/<dataset>-<split>-<extractor.name>.npz` (with `mu`
    and `sigma` as in pytorch-fid's files); the extractor name contains a hash
    of its weights, so statistics of other weights are never reused.

    Args:
        dataset: a name in `timeaware_jax.data.DATASETS`.
        extractor: the `FeatureExtractor`.
        split: `"train"` (the FID convention) or `"test"`.
        cache_dir: the cache root (default `$TIMEAWARE_CACHE`, else
            `~/.cache/timeaware_jax`).
        data_dir: passed to `load_dataset`.
        progress: called with the number of images done after each batch.

    Returns:
        The `GaussianStats` of the features.

    Raises:
        ValueError, FileNotFoundError: from `load_dataset`.

    Example:
        >>> from timeaware_jax.metrics import small_data_extractor
        >>> stats = reference_stats("digits", small_data_extractor("digits"))
        ... # doctest: +SKIP
    """
    path = reference_path(dataset, extractor.name, split=split, cache_dir=cache_dir)
    if path.is_file():
        return GaussianStats.load(path)
    images = load_dataset(dataset, split, data_dir=data_dir).images
    stats, _ = run_extractor(extractor, images, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary file, then rename: readers never see a partial file.
    with tempfile.NamedTemporaryFile(
        dir=path.parent, suffix=".npz", delete=False
    ) as handle:
        stats.save(handle, dataset=dataset, split=split, extractor=extractor.name)
    os.replace(handle.name, path)
    return stats
