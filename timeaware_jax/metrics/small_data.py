"""A Frechet distance for small data: FD-digits and FD-fashion.

FID compares images in the feature space of an ImageNet Inception-v3, which
says nothing useful about 8x8 digits and needs weights that are not here. For
the CPU-scale experiments we use the same Frechet distance in the feature
space of a small CNN classifier trained on the data set itself:

- "FD-digits": trained on the embedded 8x8 digits (train split);
- "FD-fashion": trained on Fashion-MNIST (train split).

The features are the classifier's penultimate activations (64-d after ReLU).
The classifier is trained reproducibly (fixed seed, fixed schedule) the first
time it is needed and cached under `<cache>/small_data/`.

Warning:
    These distances are **not FID**. Their values are not comparable to FID
    values, nor between data sets, nor between classifier versions (the cache
    file name carries the version). Compare models against each other with the
    same classifier. On another backend or JAX version the classifier trains
    to slightly different weights; the extractor name carries a hash of the
    weights, so cached reference statistics never mix classifiers.
"""

import dataclasses
import functools
import json
import os
import pathlib
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Int, UInt8

from timeaware_jax.data import batches, load_dataset, to_float
from timeaware_jax.metrics.extractor import FeatureExtractor, params_fingerprint
from timeaware_jax.metrics.weights import cache_dir as default_cache_dir

VERSION = 1
EVAL_BATCH = 500


class SmallClassifier(nn.Module):
    """Three ReLU convolutions, global average pooling, a ReLU dense layer, a head.

    Call: `x` `float32 [B, H, W, C]` in `[-1, 1]`; returns `(logits [B, K],
    features [B, feature_dim])`, the features being the input of the head.
    """

    num_classes: int = 10
    channels: tuple[int, ...] = (32, 64, 64)
    strides: tuple[int, ...] = (1, 2, 2)
    feature_dim: int = 64

    @nn.compact
    def __call__(self, x):
        for channels, stride in zip(self.channels, self.strides, strict=True):
            x = nn.relu(nn.Conv(channels, (3, 3), strides=(stride, stride))(x))
        x = jnp.mean(x, axis=(1, 2))  # [B, h, w, C] -> [B, C]
        features = nn.relu(nn.Dense(self.feature_dim)(x))
        return nn.Dense(self.num_classes)(features), features


@dataclasses.dataclass(frozen=True)
class SmallDataSpec:
    """The fixed recipe of one small-data classifier."""

    dataset: str
    image_shape: tuple[int, int, int]
    strides: tuple[int, ...]
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int = 0


SPECS = {
    "digits": SmallDataSpec("digits", (8, 8, 1), (1, 2, 2), 30, 64, 3e-3),
    "fashion_mnist": SmallDataSpec(
        "fashion_mnist", (28, 28, 1), (2, 2, 2), 4, 128, 2e-3
    ),
}
METRIC_DATASETS = {"fd-digits": "digits", "fd-fashion": "fashion_mnist"}


def _spec(dataset: str) -> SmallDataSpec:
    if dataset not in SPECS:
        raise ValueError(
            f"dataset must be one of {tuple(SPECS)} for the small-data distance, "
            f"got {dataset!r}."
        )
    return SPECS[dataset]


def _model(spec: SmallDataSpec) -> SmallClassifier:
    return SmallClassifier(strides=spec.strides)


def init_params(model: SmallClassifier, image_shape, seed: int) -> dict:
    """LeCun-normal kernels and zero biases, drawn with NumPy from `seed`.

    Same distribution family as Flax's defaults (untruncated), but drawn on the
    host: JAX's per-shape random kernels take seconds each to compile on a CPU,
    longer than the whole digits training.
    """
    x = jnp.zeros((1, *image_shape), jnp.float32)
    shapes = jax.eval_shape(model.init, jr.key(0), x)["params"]
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if path[-1].key == "bias":
            return np.zeros(leaf.shape, np.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))  # [..., in, out]
        return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


@functools.partial(jax.jit, static_argnums=0)
def _features(model, params, images):
    logits, features = model.apply({"params": params}, to_float(images))
    return {"features": features, "logits": logits}


def accuracy(
    params,
    spec: SmallDataSpec,
    images: UInt8[np.ndarray, "N H W C"],
    labels: Int[np.ndarray, " N"],
) -> float:
    """Top-1 accuracy of a small classifier on `uint8` images."""
    model = _model(spec)
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        batch = images[start : start + EVAL_BATCH]
        n = len(batch)
        padding = np.zeros((EVAL_BATCH - n, *batch.shape[1:]), np.uint8)
        logits = _features(model, params, np.concatenate([batch, padding]))["logits"]
        predicted = np.argmax(np.asarray(logits)[:n], axis=-1)
        correct += int(np.sum(predicted == labels[start : start + n]))
    return correct / len(images)


def train_small_classifier(
    dataset: str, *, data_dir: str | os.PathLike | None = None
) -> tuple[dict, dict]:
    """Train the small-data classifier of a data set, reproducibly.

    Adam with a cosine learning-rate decay, cross-entropy, the fixed recipe in
    `SPECS[dataset]` and a fixed seed; the training order comes from
    `timeaware_jax.data.batches`.

    Args:
        dataset: `"digits"` or `"fashion_mnist"`.
        data_dir: passed to `load_dataset`.

    Returns:
        `(params, info)`; `info` holds the recipe and the train and test
        accuracy.

    Raises:
        ValueError: for another data set.
    """
    spec = _spec(dataset)
    train = load_dataset(dataset, "train", data_dir=data_dir)
    test = load_dataset(dataset, "test", data_dir=data_dir)
    model = _model(spec)
    params = init_params(model, spec.image_shape, spec.seed)
    data_key = jr.key(spec.seed)
    steps_per_epoch = len(train) // spec.batch_size
    schedule = optax.cosine_decay_schedule(
        spec.learning_rate, spec.epochs * steps_per_epoch
    )
    tx = optax.adam(schedule)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels):
        def loss_fn(params):
            logits, _ = model.apply({"params": params}, to_float(images))
            return optax.softmax_cross_entropy_with_integer_labels(
                logits, labels
            ).mean()

        grads = jax.grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for epoch in range(spec.epochs):
        for images, labels in batches(train, spec.batch_size, data_key, epoch=epoch):
            params, opt_state = step(params, opt_state, images, labels)

    params = jax.tree.map(np.asarray, params)
    info = dataclasses.asdict(spec) | {
        "version": VERSION,
        "train_accuracy": accuracy(params, spec, train.images, train.labels),
        "test_accuracy": accuracy(params, spec, test.images, test.labels),
    }
    return params, info


def classifier_path(
    dataset: str, cache_dir: str | os.PathLike | None = None
) -> pathlib.Path:
    """The cache file of a small-data classifier."""
    root = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "small_data" / f"{dataset}-classifier-v{VERSION}.npz"


def small_data_classifier(
    dataset: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
) -> tuple[dict, dict]:
    """The cached small-data classifier of a data set, trained on first use.

    Args:
        dataset: `"digits"` (trains in seconds on a CPU) or `"fashion_mnist"`
            (about a minute or two on a laptop CPU).
        cache_dir: the cache root (default `$TIMEAWARE_CACHE`, else
            `~/.cache/timeaware_jax`).
        data_dir: passed to `load_dataset` when training.

    Returns:
        `(params, info)` as from `train_small_classifier`.
    """
    _spec(dataset)
    path = classifier_path(dataset, cache_dir)
    if path.is_file():
        params: dict = {}
        with np.load(path) as data:
            info = json.loads(str(data["info"]))
            for name in data.files:
                if name != "info":
                    tree = params
                    *parents, leaf = name.split("/")
                    for part in parents:
                        tree = tree.setdefault(part, {})
                    tree[leaf] = data[name]
        return params, info

    params, info = train_small_classifier(dataset, data_dir=data_dir)
    flat = {
        "/".join(k.key for k in keypath): leaf
        for keypath, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
        np.savez(f, info=np.str_(json.dumps(info)), **flat)
    os.replace(f.name, path)
    return params, info


def small_data_extractor(
    dataset: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = EVAL_BATCH,
) -> FeatureExtractor:
    """The penultimate features of the small-data classifier as an extractor.

    Args:
        dataset: `"digits"` or `"fashion_mnist"`.
        cache_dir: the cache root.
        data_dir: passed to `load_dataset` when the classifier is trained.
        batch_size: images per call.

    Returns:
        A `FeatureExtractor` named `fd-<dataset>-v<version>-<hash of the
        weights>` that takes `uint8` images of the data set's shape.

    Example:
        >>> extractor = small_data_extractor("digits")  # doctest: +SKIP
    """
    spec = _spec(dataset)
    params, _ = small_data_classifier(dataset, cache_dir=cache_dir, data_dir=data_dir)
    name = f"fd-{dataset}-v{VERSION}-{params_fingerprint(params)}"
    return FeatureExtractor(
        name=name,
        apply=functools.partial(_features, _model(spec), jax.device_put(params)),
        batch_size=batch_size,
        image_shape=spec.image_shape,
    )
