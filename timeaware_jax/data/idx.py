"""IDX files (the MNIST format) and Fashion-MNIST from local files."""

import gzip
import os
import pathlib

import numpy as np

from timeaware_jax.data.base import Dataset, check_split

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes) -> np.ndarray:
    """Parse the bytes of an IDX file into a numpy array.

    The format: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B
    int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions
    `d`, then `d` big-endian int32 sizes, then the values in C order.

    Args:
        data: the whole file, uncompressed.

    Returns:
        An array of the stored shape, in native byte order.

    Raises:
        ValueError: if the header is malformed or the size does not match.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
        array([7, 9], dtype=uint8)
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("data is not an IDX file: it must start with two zero bytes.")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"data has IDX type code {code:#04x}; expected one of "
            f"{[hex(c) for c in _IDX_DTYPES]}."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"data is truncated: {len(data)} bytes, header needs {header}."
        )
    shape = tuple(int(s) for s in np.frombuffer(data, ">i4", ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    if len(data) != header + count * dtype.itemsize:
        raise ValueError(
            f"data has {len(data) - header} bytes of values; shape {shape} of "
            f"{dtype} needs {count * dtype.itemsize}."
        )
    values = np.frombuffer(data, dtype, count, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed (by its magic bytes) or not.

    Args:
        path: the file.

    Returns:
        The array stored in the file.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a valid IDX file.
    """
    raw = pathlib.Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return parse_idx(raw)


def _find(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
    for candidate in (stem, stem + ".gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def load_fashion_mnist(
    split: str = "train", *, data_dir: str | os.PathLike | None = None
) -> Dataset:
    """Load Fashion-MNIST from its four IDX files.

    Args:
        split: `"train"` (60,000 images) or `"test"` (10,000 images).
        data_dir: the folder with `train-images-idx3-ubyte[.gz]`,
            `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]` and
            `t10k-labels-idx1-ubyte[.gz]`. Default
            `/usr/share/datasets/fashion-mnist/`, where the Debian package
            `dataset-fashion-mnist` installs them.

    Returns:
        A `Dataset` with images `[N, 28, 28, 1]` and 10 classes.

    Raises:
        FileNotFoundError: when a file is missing; the message names the files
            and the Debian package.
        ValueError: for an unknown split or inconsistent files.

    Example:
        >>> ds = load_fashion_mnist("test")  # doctest: +SKIP
        >>> ds.images.shape  # doctest: +SKIP
        (10000, 28, 28, 1)
    """
    check_split(split)
    directory = pathlib.Path(data_dir if data_dir is not None else FASHION_MNIST_DIR)
    stems = FASHION_MNIST_FILES[split]
    paths = [_find(directory, stem) for stem in stems]
    if any(path is None for path in paths):
        raise FileNotFoundError(
            f"Fashion-MNIST files {list(stems)} (optionally .gz) were not found in "
            f"{str(directory)!r}. Install the Debian package dataset-fashion-mnist "
            "(`apt-get install dataset-fashion-mnist`, files go to "
            f"{FASHION_MNIST_DIR}) or pass data_dir= a folder holding the IDX "
            "files from https://github.com/zalandoresearch/fashion-mnist."
        )
    images = read_idx(paths[0])
    labels = read_idx(paths[1])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"Fashion-MNIST files in {str(directory)!r} disagree: images "
            f"{images.shape}, labels {labels.shape}; expected [N, 28, 28] and [N]."
        )
    return Dataset(
        images=images.astype(np.uint8)[..., None],  # [N, H, W] -> [N, H, W, 1]
        labels=labels.astype(np.int32),
        num_classes=10,
        name="fashion_mnist",
        split=split,
    )
