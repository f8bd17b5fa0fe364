"""MNIST, CIFAR-10 and CIFAR-100 through TensorFlow Datasets, without TensorFlow.

The data is prepared once as ArrayRecord files and read back with
`tfds.data_source`, a random-access source that decodes with NumPy; TensorFlow
itself is never imported. `tensorflow_datasets` is imported only when one of
these data sets is requested.
"""

import os

import numpy as np

from timeaware_jax.data.base import Dataset, check_split

# Our name -> (TFDS name, label feature, number of classes).
TFDS_DATASETS = {
    "mnist": ("mnist", "label", 10),
    "cifar10": ("cifar10", "label", 10),
    "cifar100": ("cifar100", "label", 100),
}

_INSTALL_HINT = (
    "Install the optional dependencies with `pip install 'timeaware-jax[tfds]'`. "
    "Preparing the data needs a network once (for example on Colab), or a "
    "data_dir where it was already prepared in the array_record format."
)


def _import_tfds():
    try:
        import tensorflow_datasets
    except ImportError as error:
        raise ImportError(
            f"tensorflow-datasets is not installed. {_INSTALL_HINT}"
        ) from error
    return tensorflow_datasets


def load_tfds(
    name: str,
    split: str = "train",
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> Dataset:
    """Load a TFDS image data set into memory through `tfds.data_source`.

    Args:
        name: `"mnist"`, `"cifar10"` or `"cifar100"` (fine labels).
        split: `"train"` or `"test"`.
        data_dir: the TFDS data directory (default: `$TFDS_DATA_DIR`, else
            `~/tensorflow_datasets`).
        download: whether to download and prepare the data (as array_record)
            when it is not prepared in `data_dir` yet.

    Returns:
        A `Dataset` with `uint8` images `[N, H, W, C]`.

    Raises:
        ValueError: for an unknown name or split.
        ImportError: when `tensorflow-datasets` is not installed.
        FileNotFoundError: when the data is not prepared and `download` is
            False.
        RuntimeError: when downloading or preparing fails.

    Warning:
        With `download=True` and no network, TFDS may retry for minutes before
        it fails. Offline, pass `download=False`.

    Example:
        >>> ds = load_tfds("cifar10", "test")  # doctest: +SKIP
        >>> ds.images.shape  # doctest: +SKIP
        (10000, 32, 32, 3)
    """
    if name not in TFDS_DATASETS:
        raise ValueError(f"name must be one of {tuple(TFDS_DATASETS)}, got {name!r}.")
    check_split(split)
    tfds = _import_tfds()
    tfds_name, label_key, num_classes = TFDS_DATASETS[name]

    builder = tfds.builder(tfds_name, data_dir=data_dir, file_format="array_record")
    if not builder.is_prepared():
        if not download:
            raise FileNotFoundError(
                f"TFDS data set {tfds_name!r} is not prepared in the array_record "
                f"format under {str(builder.data_dir)!r} and download=False. "
                + _INSTALL_HINT
            )
        try:
            builder.download_and_prepare()
        except Exception as error:
            raise RuntimeError(
                f"Could not download and prepare TFDS data set {tfds_name!r}. "
                + _INSTALL_HINT
            ) from error

    source = builder.as_data_source(split=split)
    records = [source[key] for key in range(len(source))]
    images = np.stack([np.asarray(r["image"], np.uint8) for r in records])
    labels = np.asarray([r[label_key] for r in records], np.int32)
    return Dataset(
        images=images,
        labels=labels,
        num_classes=num_classes,
        name=name,
        split=split,
    )
