"""Data sets as in-memory uint8 arrays, batching and augmentation.

`load_dataset(name, split)` returns a `Dataset` for each name in `DATASETS`:
the embedded 8x8 digits (default, no download), Fashion-MNIST from local IDX
files, and MNIST, CIFAR-10 and CIFAR-100 through TFDS without TensorFlow.
"""

from timeaware_jax.data import augment
from timeaware_jax.data.augment import random_crop, random_flip, to_float, to_uint8
from timeaware_jax.data.base import DATASETS, SPLITS, Dataset, load_dataset
from timeaware_jax.data.idx import load_fashion_mnist, parse_idx, read_idx
from timeaware_jax.data.pipeline import batches, num_batches, permutation

__all__ = [
    "DATASETS",
    "SPLITS",
    "Dataset",
    "augment",
    "batches",
    "load_dataset",
    "load_fashion_mnist",
    "num_batches",
    "parse_idx",
    "permutation",
    "random_crop",
    "random_flip",
    "read_idx",
    "to_float",
    "to_uint8",
]
