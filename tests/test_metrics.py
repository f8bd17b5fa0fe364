"""Frechet distance, streaming statistics, Inception Score and the small-data FD."""

import json
import pathlib

import numpy as np
import pytest
import scipy.linalg

from timeaware_jax.data import load_dataset
from timeaware_jax.data.idx import FASHION_MNIST_DIR
from timeaware_jax.metrics import (
    GaussianStats,
    evaluate_images,
    frechet_distance,
    inception_score,
    reference_path,
    reference_stats,
    run_extractor,
    small_data_classifier,
    small_data_extractor,
    sqrtm_psd,
)

FASHION_DIR = pathlib.Path(FASHION_MNIST_DIR)


def _random_cov(rng, dim, rank=None):
    a = rng.normal(size=(dim, rank or dim))
    return a @ a.T / (rank or dim)


# --- Frechet distance -------------------------------------------------------


def test_frechet_distance_of_identical_statistics_is_zero():
    rng = np.random.default_rng(0)
    for dim, rank in ((5, None), (64, None), (64, 10)):
        mu, sigma = rng.normal(size=dim), _random_cov(rng, dim, rank)
        assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(
            0.0, abs=1e-8 * np.trace(sigma)
        )


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    v1, v2 = rng.uniform(0.1, 3.0, 20), rng.uniform(0.1, 3.0, 20)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dim,rank", [(8, None), (100, None), (100, 30)])
def test_frechet_distance_agrees_with_scipy_sqrtm(dim, rank):
    rng = np.random.default_rng(dim + (rank or 0))
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    s1, s2 = _random_cov(rng, dim, rank), _random_cov(rng, dim)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    reference = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-7)


def test_sqrtm_psd_squares_back_and_validation():
    rng = np.random.default_rng(2)
    sigma = _random_cov(rng, 30, 5)
    root = sqrtm_psd(sigma)
    np.testing.assert_allclose(root @ root, sigma, atol=1e-10)
    np.testing.assert_allclose(root, root.T)
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="finite"):
        frechet_distance(np.full(2, np.nan), np.eye(2), np.zeros(2), np.eye(2))


# --- streaming statistics ---------------------------------------------------


def test_streaming_stats_equal_numpy_on_the_full_data():
    rng = np.random.default_rng(3)
    x = rng.normal(loc=100.0, scale=[1.0, 5.0, 0.1, 2.0], size=(1001, 4))
    x[:, 3] += 0.5 * x[:, 0]
    stats = GaussianStats.empty(4)
    for batch in np.array_split(x, [1, 7, 500, 501, 990]):  # ragged, incl. size 1
        stats = stats.update(batch)
    assert stats.count == 1001
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10)

    a = GaussianStats.from_features(x[:300])
    b = GaussianStats.from_features(x[300:])
    merged = b.merge(a)  # order does not matter
    np.testing.assert_allclose(merged.cov, np.cov(x, rowvar=False), rtol=1e-10)
    assert a.merge(GaussianStats.empty(4)) is a
    with pytest.raises(ValueError, match="dimension 4"):
        a.merge(GaussianStats.empty(3))
    with pytest.raises(ValueError, match="at least 2"):
        _ = GaussianStats.from_features(x[:1]).cov


def test_stats_save_load_and_pytorch_fid_files(tmp_path):
    x = np.random.default_rng(4).normal(size=(50, 3))
    stats = GaussianStats.from_features(x)
    stats.save(tmp_path / "s.npz", dataset="toy")
    loaded = GaussianStats.load(tmp_path / "s.npz")
    assert loaded.count == 50
    np.testing.assert_array_equal(loaded.scatter, stats.scatter)
    np.savez(tmp_path / "fid.npz", mu=stats.mean, sigma=stats.cov)
    np.testing.assert_allclose(GaussianStats.load(tmp_path / "fid.npz").cov, stats.cov)


# --- Inception Score --------------------------------------------------------


def test_inception_score_extremes():
    k = 10
    confident = 80.0 * np.eye(k)[np.arange(1000) % k]
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(k, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    constant = np.tile(np.random.default_rng(5).normal(size=k), (1000, 1))
    assert inception_score(constant, splits=5)[0] == pytest.approx(1.0, abs=1e-12)
    uniform = np.zeros((100, k))
    assert inception_score(uniform, splits=1)[0] == pytest.approx(1.0)


def test_inception_score_between_bounds_and_splits():
    logits = np.random.default_rng(6).normal(scale=3.0, size=(500, 20))
    mean, std = inception_score(logits, splits=5)
    assert 1.0 < mean < 20.0 and std > 0.0
    # Two confident classes in half of the images each: IS = 2.
    half = 60.0 * np.eye(20)[np.repeat([3, 7], 250)]
    assert inception_score(half, splits=1)[0] == pytest.approx(2.0, rel=1e-9)
    with pytest.raises(ValueError, match="splits"):
        inception_score(logits, splits=0)
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        inception_score(logits[0])


# --- small-data Frechet distance ----------------------------------------------


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory):
    """A per-session cache with the digits classifier trained once."""
    cache = tmp_path_factory.mktemp("timeaware_cache")
    small_data_classifier("digits", cache_dir=cache)
    return cache


@pytest.fixture(scope="module")
def digits_fd(digits_cache):
    extractor = small_data_extractor("digits", cache_dir=digits_cache)
    train = reference_stats("digits", extractor, cache_dir=digits_cache)
    return extractor, train


def _fd(extractor, train, images):
    stats, _ = run_extractor(extractor, images)
    return frechet_distance(stats.mean, stats.cov, train.mean, train.cov)


def test_digits_classifier_is_accurate_and_cached(digits_cache):
    params, info = small_data_classifier("digits", cache_dir=digits_cache)
    assert info["test_accuracy"] > 0.9
    again, _ = small_data_classifier("digits", cache_dir=digits_cache)
    for name in params:
        for leaf in params[name]:
            np.testing.assert_array_equal(again[name][leaf], params[name][leaf])


def test_small_data_distance_separates_real_digits_from_noise(digits_fd):
    extractor, train = digits_fd
    test = load_dataset("digits", "test")
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, test.images.shape, dtype=np.uint8)
    shuffled = test.images.reshape(len(test), -1)[:, rng.permutation(64)]
    fd_test = _fd(extractor, train, test.images)
    fd_noise = _fd(extractor, train, noise)
    fd_shuffled = _fd(extractor, train, shuffled.reshape(test.images.shape))
    assert fd_test < 0.05 * fd_noise
    assert fd_test < 0.05 * fd_shuffled  # same pixel statistics, no digit shapes
    assert fd_test > 0.0


def test_evaluate_images_reports_fd_and_caches_reference(digits_cache, digits_fd):
    extractor, _ = digits_fd
    test = load_dataset("digits", "test")
    result = evaluate_images(test.images, metric="fd-digits", cache_dir=digits_cache)
    assert set(result) == {"fd"} and result["fd"] > 0.0
    assert reference_path("digits", extractor.name, cache_dir=digits_cache).is_file()
    same = evaluate_images(
        test.images, metric="fd-digits", dataset="digits", cache_dir=digits_cache
    )
    assert same["fd"] == pytest.approx(result["fd"], rel=1e-9)


def test_evaluate_images_rejects_bad_arguments(digits_cache):
    images = load_dataset("digits", "test").images
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate_images(images, metric="kid")
    with pytest.raises(ValueError, match="'digits'"):
        evaluate_images(images, metric="fd-digits", dataset="cifar10")
    with pytest.raises(ValueError, match=r"\[N, 8, 8, 1\]"):
        evaluate_images(
            np.zeros((4, 28, 28, 1), np.uint8),
            metric="fd-digits",
            cache_dir=digits_cache,
        )
    with pytest.raises(ValueError, match="uint8"):
        evaluate_images(
            images.astype(np.float32), metric="fd-digits", cache_dir=digits_cache
        )
    with pytest.raises(ValueError, match="dataset must be one of"):
        evaluate_images(images, metric="fid", dataset=None)


def test_fid_without_weights_raises_a_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TIMEAWARE_CACHE", str(tmp_path))
    monkeypatch.delenv("TIMEAWARE_INCEPTION_WEIGHTS", raising=False)
    images = np.zeros((4, 8, 8, 1), np.uint8)
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        evaluate_images(images, metric="fid", dataset="digits")


def test_fid_end_to_end_with_a_small_generated_inception(tmp_path):
    import jax

    from timeaware_jax.metrics import inception_extractor
    from timeaware_jax.metrics.convert import template_params

    def he_normal(path, leaf):  # random weights that keep activations O(1)
        if path[-1].key == "bias":
            return np.zeros(leaf.shape, np.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        rng = np.random.default_rng(len(jax.tree_util.keystr(path)))
        return (rng.normal(size=leaf.shape) * np.sqrt(2 / fan_in)).astype(np.float32)

    params = jax.tree_util.tree_map_with_path(he_normal, template_params(16))
    inception = inception_extractor(params=params, batch_size=200, input_size=75)
    test = load_dataset("digits", "test").images
    result = evaluate_images(
        test, metric="fid", dataset="digits", inception=inception, cache_dir=tmp_path
    )
    assert set(result) == {"fid", "is_mean", "is_std"}
    assert 1.0 <= result["is_mean"] <= 1008.0
    noise = np.random.default_rng(0).integers(0, 256, test.shape, dtype=np.uint8)
    worse = evaluate_images(
        noise, metric="fid", dataset="digits", inception=inception, cache_dir=tmp_path
    )
    assert 0.0 < result["fid"] < worse["fid"]


def test_cli_fid_small_data(tmp_path, digits_cache, capsys):
    from timeaware_jax.cli import main

    path = tmp_path / "samples.npz"
    np.savez(path, images=load_dataset("digits", "test").images)
    args = ["fid", str(path), "--metric", "fd-digits", "--cache-dir", str(digits_cache)]
    assert main([*args, "--out", str(tmp_path / "r.jsonl")]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["num_images"] == 360 and line["fd"] > 0.0
    assert json.loads((tmp_path / "r.jsonl").read_text())["fd"] == line["fd"]


def test_cli_fid_reads_a_folder_of_pngs(tmp_path, digits_cache, capsys):
    from PIL import Image

    from timeaware_jax.cli import main

    images = load_dataset("digits", "test").images[:40]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{i:03d}.png")
    args = [
        "fid",
        str(folder),
        "--metric",
        "fd-digits",
        "--cache-dir",
        str(digits_cache),
    ]
    assert main(args) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = evaluate_images(images, metric="fd-digits", cache_dir=digits_cache)
    assert line["fd"] == pytest.approx(expected["fd"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(
    not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_fashion_distance_separates_test_split_from_noise(tmp_path):
    _, info = small_data_classifier("fashion_mnist", cache_dir=tmp_path)
    assert info["test_accuracy"] > 0.85
    test = load_dataset("fashion_mnist", "test").images
    noise = np.random.default_rng(0).integers(0, 256, test.shape, dtype=np.uint8)
    fd_test = evaluate_images(test, metric="fd-fashion", cache_dir=tmp_path)["fd"]
    fd_noise = evaluate_images(noise, metric="fd-fashion", cache_dir=tmp_path)["fd"]
    assert 0.0 < fd_test < 0.01 * fd_noise
