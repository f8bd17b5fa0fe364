"""Batching with deterministic shuffling, driven by a JAX PRNG key."""

from collections.abc import Iterator

import jax
import jax.random as jr
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from timeaware_jax.data.base import Dataset


def num_batches(num_examples: int, batch_size: int, drop_remainder: bool = True) -> int:
    """The number of batches per epoch that `batches` yields."""
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


# One compiled program per length; unjitted, each call dispatches many ops.
_permutation = jax.jit(jr.permutation, static_argnums=1)


def permutation(key: PRNGKeyArray | Array, num_examples: int) -> Int[np.ndarray, " N"]:
    """A permutation of `range(num_examples)` determined by `key` alone.

    Args:
        key: a JAX PRNG key.
        num_examples: the length of the permutation.

    Returns:
        `np.int64` array `[num_examples]`, the same for the same key on every
        backend.
    """
    return np.asarray(_permutation(key, num_examples), dtype=np.int64)


def batches(
    dataset_or_arrays: Dataset | tuple[np.ndarray, np.ndarray],
    batch_size: int,
    key: PRNGKeyArray | Array | None,
    *,
    shuffle: bool = True,
    drop_remainder: bool = True,
    epoch: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate once over a data set in (optionally shuffled) NumPy batches.

    One call is one epoch. The order is a function of `key` only (and of
    `epoch`, which is folded into `key` when given), so a run that resumes at
    epoch `e` sees exactly the batches an uninterrupted run would:

        for epoch in range(num_epochs):
            for images, labels in batches(ds, 128, key, epoch=epoch):
                ...

    Args:
        dataset_or_arrays: a `Dataset`, or a pair `(images [N, ...],
            labels [N])` of arrays.
        batch_size: examples per batch, positive.
        key: a JAX PRNG key; may be None when `shuffle` is False.
        shuffle: whether to permute the examples.
        drop_remainder: whether to drop the last, smaller batch.
        epoch: when given, `jr.fold_in(key, epoch)` is used as the key.

    Returns:
        An iterator of `(images [batch_size, ...], labels [batch_size])`
        NumPy arrays, `num_batches(N, batch_size, drop_remainder)` of them.

    Raises:
        ValueError: for a non-positive batch size, arrays of different lengths,
            or a missing key when shuffling.

    Example:
        >>> from timeaware_jax.data import load_dataset
        >>> ds = load_dataset("digits")
        >>> images, labels = next(batches(ds, 32, jr.key(0)))
        >>> images.shape
        (32, 8, 8, 1)
    """
    if isinstance(dataset_or_arrays, Dataset):
        images, labels = dataset_or_arrays.images, dataset_or_arrays.labels
    else:
        images, labels = dataset_or_arrays
    if len(images) != len(labels):
        raise ValueError(
            f"images and labels must have the same length, got {len(images)} "
            f"and {len(labels)}."
        )
    if not isinstance(batch_size, int | np.integer) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    if shuffle and key is None:
        raise ValueError("key must be a JAX PRNG key when shuffle=True, got None.")
    return _iterate(images, labels, batch_size, key, shuffle, drop_remainder, epoch)


def _iterate(images, labels, batch_size, key, shuffle, drop_remainder, epoch):
    num_examples = len(images)
    if shuffle:
        if epoch is not None:
            key = jr.fold_in(key, epoch)
        order = permutation(key, num_examples)
    else:
        order = np.arange(num_examples)
    for i in range(num_batches(num_examples, batch_size, drop_remainder)):
        index = order[i * batch_size : (i + 1) * batch_size]
        yield images[index], labels[index]
