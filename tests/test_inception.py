"""The FID Inception-v3 port: weight conversion, parity with a PyTorch reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from timeaware_jax.metrics import (
    PYTORCH_FID_WEIGHTS,
    InceptionV3,
    check_params,
    convert_state_dict,
    find_inception_weights,
    load_params,
    resize_bilinear,
    save_params,
)
from timeaware_jax.metrics.convert import BN_EPS

# The layout of pytorch-fid's FIDInceptionV3 state dict, written out here from
# torchvision's Inception3 definition independently of the Flax module:
# (name, in channels, out channels, kernel, stride, padding).


def _fid_inception_convs(divisor: int):
    def c(n):
        return max(1, n // divisor)

    convs = []

    def add(name, cin, cout, k, stride=1, pad=None):
        k = (k, k) if isinstance(k, int) else k
        pad = (k[0] // 2, k[1] // 2) if pad is None else pad
        convs.append((name, cin, c(cout), k, stride, pad))

    add("Conv2d_1a_3x3", 3, 32, 3, 2, (0, 0))
    add("Conv2d_2a_3x3", c(32), 32, 3, 1, (0, 0))
    add("Conv2d_2b_3x3", c(32), 64, 3)
    add("Conv2d_3b_1x1", c(64), 80, 1)
    add("Conv2d_4a_3x3", c(80), 192, 3, 1, (0, 0))
    cin = c(192)
    for block, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
        add(f"{block}.branch1x1", cin, 64, 1)
        add(f"{block}.branch5x5_1", cin, 48, 1)
        add(f"{block}.branch5x5_2", c(48), 64, 5)
        add(f"{block}.branch3x3dbl_1", cin, 64, 1)
        add(f"{block}.branch3x3dbl_2", c(64), 96, 3)
        add(f"{block}.branch3x3dbl_3", c(96), 96, 3)
        add(f"{block}.branch_pool", cin, pool_features, 1)
        cin = c(64) + c(64) + c(96) + c(pool_features)
    add("Mixed_6a.branch3x3", cin, 384, 3, 2, (0, 0))
    add("Mixed_6a.branch3x3dbl_1", cin, 64, 1)
    add("Mixed_6a.branch3x3dbl_2", c(64), 96, 3)
    add("Mixed_6a.branch3x3dbl_3", c(96), 96, 3, 2, (0, 0))
    cin = c(384) + c(96) + cin
    for block, c7 in (
        ("Mixed_6b", 128),
        ("Mixed_6c", 160),
        ("Mixed_6d", 160),
        ("Mixed_6e", 192),
    ):
        add(f"{block}.branch1x1", cin, 192, 1)
        add(f"{block}.branch7x7_1", cin, c7, 1)
        add(f"{block}.branch7x7_2", c(c7), c7, (1, 7))
        add(f"{block}.branch7x7_3", c(c7), 192, (7, 1))
        add(f"{block}.branch7x7dbl_1", cin, c7, 1)
        add(f"{block}.branch7x7dbl_2", c(c7), c7, (7, 1))
        add(f"{block}.branch7x7dbl_3", c(c7), c7, (1, 7))
        add(f"{block}.branch7x7dbl_4", c(c7), c7, (7, 1))
        add(f"{block}.branch7x7dbl_5", c(c7), 192, (1, 7))
        add(f"{block}.branch_pool", cin, 192, 1)
        cin = 4 * c(192)
    add("Mixed_7a.branch3x3_1", cin, 192, 1)
    add("Mixed_7a.branch3x3_2", c(192), 320, 3, 2, (0, 0))
    add("Mixed_7a.branch7x7x3_1", cin, 192, 1)
    add("Mixed_7a.branch7x7x3_2", c(192), 192, (1, 7))
    add("Mixed_7a.branch7x7x3_3", c(192), 192, (7, 1))
    add("Mixed_7a.branch7x7x3_4", c(192), 192, 3, 2, (0, 0))
    cin = c(320) + c(192) + cin
    for block in ("Mixed_7b", "Mixed_7c"):
        add(f"{block}.branch1x1", cin, 320, 1)
        add(f"{block}.branch3x3_1", cin, 384, 1)
        add(f"{block}.branch3x3_2a", c(384), 384, (1, 3))
        add(f"{block}.branch3x3_2b", c(384), 384, (3, 1))
        add(f"{block}.branch3x3dbl_1", cin, 448, 1)
        add(f"{block}.branch3x3dbl_2", c(448), 384, 3)
        add(f"{block}.branch3x3dbl_3a", c(384), 384, (1, 3))
        add(f"{block}.branch3x3dbl_3b", c(384), 384, (3, 1))
        add(f"{block}.branch_pool", cin, 192, 1)
        cin = c(320) + 4 * c(384) + c(192)
    return {conv[0]: conv for conv in convs}, cin


def fake_state_dict(divisor: int, seed: int = 0, buffers: bool = True):
    """Random weights with pytorch-fid's names and shapes; BN keeps activations O(1)."""
    rng = np.random.default_rng(seed)
    convs, features = _fid_inception_convs(divisor)
    state = {}
    for name, cin, cout, (kh, kw), _, _ in convs.values():
        fan_in = cin * kh * kw
        state[f"{name}.conv.weight"] = (
            rng.normal(size=(cout, cin, kh, kw)) * np.sqrt(2.0 / fan_in)
        ).astype(np.float32)
        state[f"{name}.bn.weight"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        state[f"{name}.bn.bias"] = rng.normal(0.0, 0.1, cout).astype(np.float32)
        state[f"{name}.bn.running_mean"] = rng.normal(0.0, 0.1, cout).astype(np.float32)
        state[f"{name}.bn.running_var"] = rng.uniform(0.5, 2.0, cout).astype(np.float32)
        if buffers:
            state[f"{name}.bn.num_batches_tracked"] = np.array(0, np.int64)
    state["fc.weight"] = (rng.normal(size=(1008, features)) / np.sqrt(features)).astype(
        np.float32
    )
    state["fc.bias"] = rng.normal(0.0, 0.1, 1008).astype(np.float32)
    return state


def test_spec_matches_torchvision_parameter_count():
    # torchvision's inception_v3 without the auxiliary head has 23,834,568
    # trainable parameters; pytorch-fid's has 8 more classes: + 8 * 2049.
    state = fake_state_dict(16)  # cheap; the count below uses full-size shapes
    convs, features = _fid_inception_convs(1)
    count = sum(
        cout * cin * kh * kw + 2 * cout
        for _, cin, cout, (kh, kw), _, _ in convs.values()
    )
    count += 1008 * features + 1008
    assert features == 2048
    assert count == 23_834_568 + 8 * 2049
    assert len(convs) == 94 and len(state) == 94 * 6 + 2


@pytest.fixture(scope="module")
def small_state():
    return fake_state_dict(16)


@pytest.fixture(scope="module")
def small_params(small_state):
    return convert_state_dict(small_state)


def test_converter_maps_every_tensor_by_name_and_shape(small_state, small_params):
    flat = {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(small_params)[0]
    }
    assert len(flat) == 94 * 2 + 2  # a folded kernel and bias per conv, fc
    check_params(small_params, 16)

    # BatchNorm folding, checked on an asymmetric kernel: out = conv(x) * s + b.
    name = "Mixed_6b.branch7x7_2"
    w = small_state[f"{name}.conv.weight"].astype(np.float64)  # [out, in, 1, 7]
    s = small_state[f"{name}.bn.weight"] / np.sqrt(
        small_state[f"{name}.bn.running_var"].astype(np.float64) + BN_EPS
    )
    kernel = small_params["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"]
    assert kernel.shape == (1, 7, w.shape[1], w.shape[0])  # [kh, kw, in, out]
    np.testing.assert_allclose(
        kernel, (w * s[:, None, None, None]).transpose(2, 3, 1, 0), rtol=1e-6
    )
    bias = small_params["Mixed_6b"]["branch7x7_2"]["conv"]["bias"]
    expected = (
        small_state[f"{name}.bn.bias"] - small_state[f"{name}.bn.running_mean"] * s
    )
    np.testing.assert_allclose(bias, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        small_params["fc"]["kernel"], small_state["fc.weight"].T
    )


def test_full_size_state_dict_converts_completely():
    params = convert_state_dict(fake_state_dict(1, buffers=False))
    leaves = jax.tree.leaves(params)
    assert sum(leaf.size for leaf in leaves) == 23_834_568 + 8 * 2049 - sum(
        cout for _, _, cout, _, _, _ in _fid_inception_convs(1)[0].values()
    )  # folding drops one vector (the BN scale) per conv
    assert params["Mixed_7c"]["branch_pool"]["conv"]["kernel"].shape == (
        1,
        1,
        2048,
        192,
    )


def test_converter_rejects_leftover_missing_and_misshaped(small_state):
    extra = dict(
        small_state, **{"AuxLogits.fc.weight": np.zeros((10, 768), np.float32)}
    )
    with pytest.raises(ValueError, match="AuxLogits.fc.weight"):
        convert_state_dict(extra)
    missing = {
        k: v
        for k, v in small_state.items()
        if k != "Mixed_5b.branch_pool.bn.running_var"
    }
    with pytest.raises(ValueError, match="Mixed_5b.branch_pool.bn.running_var"):
        convert_state_dict(missing)
    no_block = {
        k: v for k, v in small_state.items() if not k.startswith("Mixed_7c.branch_pool")
    }
    with pytest.raises(ValueError, match="missing.*Mixed_7c/branch_pool"):
        convert_state_dict(no_block)
    bad = dict(small_state)
    bad["Mixed_6e.branch1x1.conv.weight"] = np.zeros((12, 3, 1, 1), np.float32)
    with pytest.raises(ValueError, match="wrong shapes.*Mixed_6e/branch1x1"):
        convert_state_dict(bad)


@pytest.mark.parametrize("suffix", [".npz", ""])
def test_save_and_load_params(tmp_path, small_params, suffix):
    path = save_params(small_params, tmp_path / f"inception{suffix}")
    loaded = load_params(path)
    jax.tree.map(np.testing.assert_array_equal, loaded, small_params)


def test_pth_roundtrip_and_cli_convert(tmp_path, small_state):
    torch = pytest.importorskip("torch")
    from timeaware_jax.cli import main

    src = tmp_path / PYTORCH_FID_WEIGHTS
    torch.save(
        {k: torch.from_numpy(np.asarray(v)) for k, v in small_state.items()}, src
    )
    out = tmp_path / "converted.npz"
    assert main(["fid", "--convert", str(src), "--out", str(out)]) == 0
    direct = load_params(src)  # a .pth is converted on the fly
    jax.tree.map(np.testing.assert_array_equal, load_params(out), direct)


def test_missing_weights_error_says_what_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TIMEAWARE_CACHE", str(tmp_path))
    monkeypatch.delenv("TIMEAWARE_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        find_inception_weights()
    message = str(info.value)
    assert PYTORCH_FID_WEIGHTS in message
    assert "github.com/mseitzer/pytorch-fid/releases" in message
    assert "timeaware fid --convert" in message
    with pytest.raises(FileNotFoundError, match=PYTORCH_FID_WEIGHTS):
        find_inception_weights(tmp_path / "nope.npz")


# --- Parity with an independent PyTorch implementation ------------------------


def torch_fid_inception(state, x, size):
    """pytorch-fid's FIDInceptionV3 forward, written with torch.nn.functional."""
    import torch
    import torch.nn.functional as F

    sd = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    convs, _ = _fid_inception_convs(32 // sd["Conv2d_1a_3x3.conv.weight"].shape[0])

    def conv(name, h):
        _, _, _, _, stride, pad = convs[name]
        h = F.conv2d(h, sd[f"{name}.conv.weight"], stride=stride, padding=pad)
        h = F.batch_norm(
            h,
            sd[f"{name}.bn.running_mean"],
            sd[f"{name}.bn.running_var"],
            sd[f"{name}.bn.weight"],
            sd[f"{name}.bn.bias"],
            training=False,
            eps=1e-3,
        )
        return F.relu(h)

    def avg(h):
        return F.avg_pool2d(h, 3, stride=1, padding=1, count_include_pad=False)

    def seq(names, h):
        for name in names:
            h = conv(name, h)
        return h

    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = seq(["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"], x)
    x = F.max_pool2d(x, 3, stride=2)
    x = seq(["Conv2d_3b_1x1", "Conv2d_4a_3x3"], x)
    x = F.max_pool2d(x, 3, stride=2)
    for b in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = torch.cat(
            [
                conv(f"{b}.branch1x1", x),
                seq([f"{b}.branch5x5_1", f"{b}.branch5x5_2"], x),
                seq([f"{b}.branch3x3dbl_{i}" for i in (1, 2, 3)], x),
                conv(f"{b}.branch_pool", avg(x)),
            ],
            1,
        )
    x = torch.cat(
        [
            conv("Mixed_6a.branch3x3", x),
            seq([f"Mixed_6a.branch3x3dbl_{i}" for i in (1, 2, 3)], x),
            F.max_pool2d(x, 3, stride=2),
        ],
        1,
    )
    for b in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = torch.cat(
            [
                conv(f"{b}.branch1x1", x),
                seq([f"{b}.branch7x7_{i}" for i in (1, 2, 3)], x),
                seq([f"{b}.branch7x7dbl_{i}" for i in (1, 2, 3, 4, 5)], x),
                conv(f"{b}.branch_pool", avg(x)),
            ],
            1,
        )
    x = torch.cat(
        [
            seq(["Mixed_7a.branch3x3_1", "Mixed_7a.branch3x3_2"], x),
            seq([f"Mixed_7a.branch7x7x3_{i}" for i in (1, 2, 3, 4)], x),
            F.max_pool2d(x, 3, stride=2),
        ],
        1,
    )
    for b, pool in (
        ("Mixed_7b", avg),
        ("Mixed_7c", lambda h: F.max_pool2d(h, 3, 1, 1)),
    ):
        h3 = conv(f"{b}.branch3x3_1", x)
        hd = seq([f"{b}.branch3x3dbl_1", f"{b}.branch3x3dbl_2"], x)
        x = torch.cat(
            [
                conv(f"{b}.branch1x1", x),
                conv(f"{b}.branch3x3_2a", h3),
                conv(f"{b}.branch3x3_2b", h3),
                conv(f"{b}.branch3x3dbl_3a", hd),
                conv(f"{b}.branch3x3dbl_3b", hd),
                conv(f"{b}.branch_pool", pool(x)),
            ],
            1,
        )
    features = x.mean(dim=(2, 3))
    return features, features @ sd["fc.weight"].T + sd["fc.bias"]


def _parity(state, params, divisor, size, batch):
    torch = pytest.importorskip("torch")
    images = (
        np.random.default_rng(1).uniform(size=(batch, 37, 29, 3)).astype(np.float32)
    )
    model = InceptionV3(width_divisor=divisor, input_size=size)
    out = jax.jit(model.apply)({"params": params}, jnp.asarray(images))
    with torch.no_grad():
        features, logits = torch_fid_inception(
            state, torch.from_numpy(images).permute(0, 3, 1, 2), size
        )
    scale = float(np.abs(features.numpy()).max())
    assert scale > 1e-3  # the random network is not dead
    np.testing.assert_allclose(
        out["features"], features.numpy(), atol=1e-4 * scale, rtol=1e-3
    )
    np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-3, rtol=1e-3)
    unbiased = np.asarray(out["logits"]) - state["fc.bias"]
    np.testing.assert_allclose(out["logits_unbiased"], unbiased, atol=1e-4)


def test_narrow_network_matches_pytorch_reference(small_state, small_params):
    _parity(small_state, small_params, divisor=16, size=75, batch=2)


@pytest.mark.slow
def test_full_size_network_matches_pytorch_reference():
    state = fake_state_dict(1, seed=2)
    _parity(state, convert_state_dict(state), divisor=1, size=299, batch=1)


def test_resize_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = np.random.default_rng(0).uniform(size=(2, 8, 11, 3)).astype(np.float32)
    for size in (5, 29):  # down and up
        ours = np.asarray(resize_bilinear(jnp.asarray(x), size))
        ref = F.interpolate(
            torch.from_numpy(x).permute(0, 3, 1, 2),
            (size, size),
            mode="bilinear",
            align_corners=False,
        ).permute(0, 2, 3, 1)
        np.testing.assert_allclose(ours, ref.numpy(), atol=1e-5)


def test_inception_rejects_wrong_channels(small_params):
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        InceptionV3(width_divisor=16, input_size=75).apply(
            {"params": small_params}, jnp.zeros((1, 8, 8, 1))
        )
