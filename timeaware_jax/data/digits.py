"""The embedded default data set: scikit-learn's bundled 8x8 handwritten digits."""

import functools

import numpy as np

from timeaware_jax.data.base import Dataset, check_split

NUM_TEST = 360
SPLIT_SEED = 0


@functools.cache
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    # Values are integers 0..16; map them onto 0..255.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = images[..., None]  # [N, 8, 8] -> [N, 8, 8, 1]
    labels = bunch.target.astype(np.int32)
    return tuple(
        train_test_split(
            images,
            labels,
            test_size=NUM_TEST,
            stratify=labels,
            random_state=SPLIT_SEED,
            shuffle=True,
        )
    )


def load_digits(split: str = "train") -> Dataset:
    """Load scikit-learn's 8x8 digits with a fixed stratified train/test split.

    The 1,797 images (UCI optical recognition of handwritten digits, values
    0..16) are rescaled to `uint8` by `round(v * 255 / 16)`. The split is
    stratified by class with a fixed seed: 1,437 training and 360 test images,
    the same on every machine. No download is needed.

    Args:
        split: `"train"` or `"test"`.

    Returns:
        A `Dataset` with images `[N, 8, 8, 1]` and 10 classes.

    Raises:
        ValueError: for an unknown split.

    Example:
        >>> len(load_digits("test"))
        360
    """
    check_split(split)
    x_train, x_test, y_train, y_test = _digits_split()
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return Dataset(
        images=images.copy(),
        labels=labels.copy(),
        num_classes=10,
        name="digits",
        split=split,
    )
