"""Data sets, IDX parsing, batching and augmentation."""

import gzip
import os

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from timeaware_jax.data import (
    DATASETS,
    Dataset,
    batches,
    load_dataset,
    num_batches,
    parse_idx,
    random_crop,
    random_flip,
    read_idx,
    to_float,
    to_uint8,
)
from timeaware_jax.data.idx import FASHION_MNIST_DIR

# --- digits -----------------------------------------------------------------


def test_digits_shapes_dtype_range():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert train.images.shape == (1437, 8, 8, 1)
    assert test.images.shape == (360, 8, 8, 1)
    for ds in (train, test):
        assert ds.images.dtype == np.uint8 and ds.labels.dtype == np.int32
        assert ds.num_classes == 10 and ds.name == "digits"
        assert set(np.unique(ds.labels)) == set(range(10))
    assert train.images.max() == 255 and train.images.min() == 0
    # Every value is one of the 17 images of round(v * 255 / 16).
    levels = np.round(np.arange(17) * 255 / 16).astype(np.uint8)
    assert np.isin(train.images, levels).all()


def test_digits_split_disjoint_complete_stratified_and_deterministic():
    from sklearn.datasets import load_digits

    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    again = load_dataset("digits", "test")
    np.testing.assert_array_equal(test.images, again.images)
    np.testing.assert_array_equal(test.labels, again.labels)

    # Together the splits are exactly the 1,797 sklearn images (as a multiset).
    bunch = load_digits()
    full = (
        np.round(bunch.images * 255 / 16)
        .astype(np.uint8)
        .reshape(len(bunch.images), -1)
    )
    rows = lambda a: sorted(map(bytes, a.reshape(len(a), -1)))  # noqa: E731
    assert rows(np.concatenate([train.images, test.images])) == rows(full)
    # Disjoint as index sets: no image is used twice beyond its duplicates.
    assert len(train) + len(test) == len(full)
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: 36 +- 1


def test_load_dataset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("digits", "validation")
    assert DATASETS[0] == "digits"


def test_dataset_validates_dtypes():
    with pytest.raises(ValueError, match="images must be np.uint8"):
        Dataset(
            np.zeros((2, 4, 4, 1), np.float32), np.zeros(2, np.int32), 10, "x", "train"
        )
    with pytest.raises(ValueError, match="labels must be np.int32"):
        Dataset(
            np.zeros((2, 4, 4, 1), np.uint8), np.zeros(3, np.int32), 10, "x", "train"
        )


# --- IDX and Fashion-MNIST ----------------------------------------------------


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize(
    "dtype,code",
    [(np.uint8, 0x08), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D)],
)
def test_parse_idx_roundtrip(dtype, code):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    out = parse_idx(_idx_bytes(array, code))
    assert out.shape == array.shape and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, array)


def test_parse_idx_rejects_bad_files():
    with pytest.raises(ValueError, match="two zero bytes"):
        parse_idx(b"\x01\x00\x08\x01")
    with pytest.raises(ValueError, match="type code"):
        parse_idx(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="needs"):
        parse_idx(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 5]))


def _write_fake_fashion(directory, n=5, compress=True):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    for stem, array in (
        ("train-images-idx3-ubyte", images),
        ("train-labels-idx1-ubyte", labels),
    ):
        data = _idx_bytes(array, 0x08)
        if compress:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_generated_files(tmp_path, compress):
    images, labels = _write_fake_fashion(tmp_path, compress=compress)
    ds = load_dataset("fashion_mnist", "train", data_dir=tmp_path)
    assert ds.images.shape == (5, 28, 28, 1) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[..., 0], images)
    np.testing.assert_array_equal(ds.labels, labels.astype(np.int32))


def test_fashion_mnist_missing_files_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist") as info:
        load_dataset("fashion_mnist", "test", data_dir=tmp_path)
    assert "t10k-images-idx3-ubyte" in str(info.value)


@pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz")),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_test_split():
    ds = load_dataset("fashion_mnist", "test")
    assert ds.images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(ds.labels), np.full(10, 1000))
    labels = read_idx(os.path.join(FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz"))
    assert labels[:5].tolist() == [9, 2, 1, 1, 6]  # the first test labels, as published


# --- TFDS -------------------------------------------------------------------


def test_tfds_without_prepared_data_fails_fast_with_install_hint(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match=r"timeaware-jax\[tfds\]"):
        load_dataset("cifar10", "train", data_dir=tmp_path, download=False)


@pytest.mark.parametrize(
    "name,shape,classes", [("mnist", (28, 28, 1), 10), ("cifar100", (32, 32, 3), 100)]
)
def test_tfds_records_become_uint8_arrays(tmp_path, name, shape, classes):
    tfds = pytest.importorskip("tensorflow_datasets")
    # mock_data replaces download_and_prepare by a no-op and serves random
    # records through the real data_source code path: no network is touched.
    with tfds.testing.mock_data(
        num_examples=7, policy=tfds.testing.MockPolicy.USE_CODE
    ):
        ds = load_dataset(name, "test", data_dir=tmp_path)
    assert ds.images.shape == (7, *shape) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int32 and ds.num_classes == classes
    assert ds.labels.min() >= 0 and ds.labels.max() < classes


# --- batches ----------------------------------------------------------------


def test_batches_deterministic_covering_and_epoch_dependent():
    ds = load_dataset("digits", "test")
    key = jr.key(3)
    first = list(batches(ds, 64, key, drop_remainder=False))
    again = list(batches(ds, 64, key, drop_remainder=False))
    assert len(first) == num_batches(360, 64, drop_remainder=False) == 6
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)

    # Without dropping, each example appears exactly once: compare as multisets.
    images = np.concatenate([x for x, _ in first])
    rows = lambda a: sorted(map(bytes, a.reshape(len(a), -1)))  # noqa: E731
    assert rows(images) == rows(ds.images)
    assert not np.array_equal(images, ds.images)  # actually shuffled

    dropped = list(batches(ds, 64, key))
    assert len(dropped) == 5 and all(len(y) == 64 for _, y in dropped)

    e0 = next(batches(ds, 64, key, epoch=0))[1]
    e1 = next(batches(ds, 64, key, epoch=1))[1]
    assert not np.array_equal(e0, e1)


def test_batches_unshuffled_and_arrays_and_errors():
    x = np.arange(10)[:, None]
    y = np.arange(10)
    out = list(batches((x, y), 4, None, shuffle=False, drop_remainder=False))
    assert [b[1].tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="batch_size"):
        batches((x, y), 0, None, shuffle=False)
    with pytest.raises(ValueError, match="key"):
        batches((x, y), 2, None)
    with pytest.raises(ValueError, match="same length"):
        batches((x, y[:3]), 2, jr.key(0))


# --- augmentation -------------------------------------------------------------


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    key = jr.key(0)
    x = jnp.asarray(np.random.default_rng(0).integers(1, 256, (64, 6, 6, 2)), jnp.uint8)
    out = np.asarray(random_crop(key, x, 2))
    assert out.shape == x.shape and out.dtype == np.uint8
    padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = set()
    for b in range(len(x)):
        matches = [
            (i, j)
            for i in range(5)
            for j in range(5)
            if np.array_equal(out[b], padded[b, i : i + 6, j : j + 6])
        ]
        assert len(matches) == 1  # pixels are nonzero, so the offset is unique
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets vary across the batch
    np.testing.assert_array_equal(random_crop(key, x, 0), x)
    with pytest.raises(ValueError, match="padding"):
        random_crop(key, x, -1)


def test_random_flip_flips_about_half_and_is_an_involution_per_image():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(200, 4, 5, 3)), jnp.float32)
    out = np.asarray(random_flip(jr.key(1), x))
    pairs = list(zip(out, np.asarray(x), strict=True))
    flipped = np.array([np.array_equal(o, xi[:, ::-1]) for o, xi in pairs])
    kept = np.array([np.array_equal(o, xi) for o, xi in pairs])
    assert np.all(flipped ^ kept)
    assert 70 < flipped.sum() < 130  # Binomial(200, 1/2): mean 100, sd ~7
    with pytest.raises(ValueError, match="B, H, W, C"):
        random_flip(jr.key(1), x[0])


def test_to_float_and_back():
    v = np.arange(256, dtype=np.uint8)
    x = to_float(v)
    assert x.dtype == jnp.float32 and float(x[0]) == -1.0 and float(x[-1]) == 1.0
    np.testing.assert_array_equal(np.asarray(to_uint8(x)), v)
    with pytest.raises(ValueError, match="uint8"):
        to_float(v.astype(np.float32))
