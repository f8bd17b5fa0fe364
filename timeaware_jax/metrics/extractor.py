"""Feature extractors: batched, jitted maps from uint8 images to features.

A `FeatureExtractor` wraps a jitted function from a `uint8 [B, H, W, C]`
batch to a dict with at least `"features"` `[B, D]`. `run_extractor` feeds
any number of images through it in fixed-size batches (the last one padded,
so the function compiles once) and accumulates the Gaussian statistics of the
features in float64.
"""

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jaxtyping import UInt8

from timeaware_jax.metrics.convert import load_params
from timeaware_jax.metrics.inception import InceptionV3, to_unit_rgb, width_divisor_of
from timeaware_jax.metrics.stats import GaussianStats
from timeaware_jax.metrics.weights import find_inception_weights


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A named, jitted feature map over `uint8` images.

    Attributes:
        name: identifies the extractor and its weights; reference statistics
            are cached under this name.
        apply: `uint8 [B, H, W, C] -> {"features": [B, D], ...}`.
        batch_size: images per call.
        image_shape: the `(H, W, C)` the extractor requires, or None when it
            resizes any input itself.
    """

    name: str
    apply: Callable[[jax.Array], dict[str, jax.Array]]
    batch_size: int = 100
    image_shape: tuple[int, int, int] | None = None


def params_fingerprint(params) -> str:
    """A short hash of a parameter pytree (names, shapes and values)."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        leaf = np.ascontiguousarray(np.asarray(leaf, np.float32))
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(str(leaf.shape).encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()[:12]


def _check_images(images, image_shape) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            "images must be uint8 of shape [N, H, W, C], got dtype "
            f"{images.dtype} and shape {images.shape}."
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"images must have shape [N, {', '.join(map(str, image_shape))}] for "
            f"this feature extractor, got {images.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got none.")
    return images


def run_extractor(
    extractor: FeatureExtractor,
    images: UInt8[np.ndarray, "N H W C"],
    *,
    collect: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[GaussianStats, dict[str, np.ndarray]]:
    """Run a feature extractor over images; accumulate the feature statistics.

    Args:
        extractor: the `FeatureExtractor`.
        images: `uint8 [N, H, W, C]`.
        collect: names of further outputs to return in full (e.g.
            `"logits_unbiased"` for the Inception Score).
        progress: called with the number of images done after each batch
            (for a progress bar); None for silence.

    Returns:
        `(stats, collected)`: the `GaussianStats` of `"features"` and a dict
        of the collected outputs, each `[N, ...]`.

    Raises:
        ValueError: for images of the wrong dtype or shape.
    """
    images = _check_images(images, extractor.image_shape)
    batch_size = extractor.batch_size
    stats = None
    collected: dict[str, list[np.ndarray]] = {name: [] for name in collect}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        n = len(batch)
        if n < batch_size:  # pad to one shape: compile once
            padding = np.zeros((batch_size - n, *batch.shape[1:]), np.uint8)
            batch = np.concatenate([batch, padding])
        outputs = extractor.apply(batch)
        features = np.asarray(outputs["features"], np.float64)[:n]
        if stats is None:
            stats = GaussianStats.empty(features.shape[1])
        stats = stats.update(features)
        for name in collect:
            collected[name].append(np.asarray(outputs[name])[:n])
        if progress is not None:
            progress(n)
    return stats, {name: np.concatenate(parts) for name, parts in collected.items()}


@functools.partial(jax.jit, static_argnums=0)
def _inception_apply(model, params, images):
    return model.apply({"params": params}, to_unit_rgb(images))


def inception_extractor(
    weights: str | os.PathLike | None = None,
    *,
    params=None,
    batch_size: int = 50,
    input_size: int = 299,
    cache_root: str | os.PathLike | None = None,
) -> FeatureExtractor:
    """The FID Inception-v3 as a `FeatureExtractor` (2048-d pool features).

    Outputs `"features"`, `"logits"` and `"logits_unbiased"` of
    `InceptionV3`. Grayscale images are repeated over three channels; every
    image is resized to 299x299.

    Args:
        weights: path of the weights (see `find_inception_weights`); ignored
            when `params` is given.
        params: an already loaded parameter pytree (for tests: small
            generated weights).
        batch_size: images per call.
        input_size: the resize target (299 for FID; smaller only for tests).
        cache_root: where to look for converted weights (see
            `find_inception_weights`).

    Returns:
        A `FeatureExtractor` named `inception-fid-<hash of the weights>`.

    Raises:
        FileNotFoundError: when no weights are found (the message says which
            file and how to obtain it).
    """
    if params is None:
        params = load_params(find_inception_weights(weights, cache_root=cache_root))
    divisor = width_divisor_of(params)
    model = InceptionV3(width_divisor=divisor, input_size=input_size)
    device_params = jax.device_put(params)
    name = f"inception-fid-{params_fingerprint(params)}"
    if input_size != 299:
        name += f"-{input_size}px"
    return FeatureExtractor(
        name=name,
        apply=functools.partial(_inception_apply, model, device_params),
        batch_size=batch_size,
        image_shape=None,
    )
