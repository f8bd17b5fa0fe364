"""The `Dataset` container and the `load_dataset` dispatch over all data sets."""

import dataclasses
import os

import numpy as np

DATASETS = ("digits", "fashion_mnist", "mnist", "cifar10", "cifar100")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """An image classification data set held in memory.

    Images follow the FID conventions: `uint8` values in `[0, 255]`, layout
    NHWC, so the same array feeds training (after `augment.to_float`) and
    the reference statistics of `timeaware_jax.metrics`.

    Attributes:
        images: `np.uint8` array of shape `[N, H, W, C]`.
        labels: `np.int32` array of shape `[N]`, values in `[0, num_classes)`.
        num_classes: number of classes.
        name: one of `DATASETS`.
        split: `"train"` or `"test"`.

    Raises:
        ValueError: if the arrays have the wrong dtype, rank or length.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    name: str
    split: str

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(
                "images must be np.uint8 of shape [N, H, W, C], got dtype "
                f"{self.images.dtype} and shape {self.images.shape}."
            )
        if self.labels.dtype != np.int32 or self.labels.shape != (
            self.images.shape[0],
        ):
            raise ValueError(
                f"labels must be np.int32 of shape [{self.images.shape[0]}], got "
                f"dtype {self.labels.dtype} and shape {self.labels.shape}."
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape `(H, W, C)` of one image."""
        return tuple(self.images.shape[1:])


def check_split(split: str) -> None:
    """Raise a `ValueError` unless `split` is `"train"` or `"test"`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")


def load_dataset(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """Load a data set into memory as `uint8` NHWC images and `int32` labels.

    | name | images | source |
    | --- | --- | --- |
    | `"digits"` | 1,437 / 360 of 8x8x1 | scikit-learn's bundled digits (no download) |
    | `"fashion_mnist"` | 60,000 / 10,000 of 28x28x1 | local IDX files |
    | `"mnist"` | 60,000 / 10,000 of 28x28x1 | TFDS |
    | `"cifar10"` | 50,000 / 10,000 of 32x32x3 | TFDS |
    | `"cifar100"` | 50,000 / 10,000 of 32x32x3 | TFDS |

    Args:
        name: one of `DATASETS`.
        split: `"train"` or `"test"`.
        data_dir: where the files are. For `"fashion_mnist"` the folder of the
            IDX files (default `/usr/share/datasets/fashion-mnist/`, from the
            Debian package `dataset-fashion-mnist`); for the TFDS data sets the
            TFDS data directory (default `~/tensorflow_datasets`). Ignored for
            `"digits"`.
        download: TFDS data sets only: whether to download and prepare the
            data when it is not in `data_dir` yet (needs a network).

    Returns:
        A `Dataset`.

    Raises:
        ValueError: for an unknown name or split.
        FileNotFoundError: when the files of a local or TFDS data set are
            missing (the message says how to obtain them).
        ImportError: for TFDS data sets when `tensorflow-datasets` is missing.

    Example:
        >>> ds = load_dataset("digits", "train")
        >>> ds.images.shape, ds.images.dtype
        ((1437, 8, 8, 1), dtype('uint8'))
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got {name!r}.")
    check_split(split)
    if name == "digits":
        from timeaware_jax.data.digits import load_digits

        return load_digits(split)
    if name == "fashion_mnist":
        from timeaware_jax.data.idx import load_fashion_mnist

        return load_fashion_mnist(split, data_dir=data_dir)
    from timeaware_jax.data.tfds import load_tfds

    return load_tfds(name, split, data_dir=data_dir, download=download)
