"""Building blocks against closed forms, direct references and PyTorch."""

import importlib.util

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from timeaware_jax.nn import (
    CONDITIONINGS,
    ConcatConv,
    Norm,
    TimeConditionedNorm,
    TimestepEmbedding,
    make_norm,
    normalize,
    positional_pattern,
    sinusoidal_embedding,
    time_channel,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None


def reference_conv(x, kernel, stride, pad):
    """Direct cross-correlation with zero padding, loops over output pixels."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    b, h, w, _ = x.shape
    k, cout = kernel.shape[0], kernel.shape[-1]
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.zeros((b, ho, wo, cout))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, i, j] = np.einsum("bhwc,hwco->bo", patch, kernel)
    return out


def reference_conv_transpose(x, kernel, stride, pad):
    """Transposed conv by its definition: scatter each input pixel's kernel."""
    b, h, w, _ = x.shape
    k, cout = kernel.shape[0], kernel.shape[-1]
    full = np.zeros((b, (h - 1) * stride + k, (w - 1) * stride + k, cout))
    for i in range(h):
        for j in range(w):
            contrib = np.einsum("bc,hwco->bhwo", x[:, i, j], kernel)
            full[:, i * stride : i * stride + k, j * stride : j * stride + k] += contrib
    return full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad]


def test_sinusoidal_embedding_closed_form():
    t = jnp.array([0.0, 3.0])
    emb = sinusoidal_embedding(t, 8, scale=2.0, max_period=100.0)
    freqs = 100.0 ** (-np.arange(4) / 4)
    expected = np.concatenate([np.sin(2.0 * 3.0 * freqs), np.cos(2.0 * 3.0 * freqs)])
    np.testing.assert_allclose(emb[0], np.r_[np.zeros(4), np.ones(4)], atol=1e-7)
    np.testing.assert_allclose(emb[1], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(t=jnp.zeros(2), dim=7), "dim"), (dict(t=jnp.zeros((2, 2)), dim=4), "t")],
)
def test_sinusoidal_embedding_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sinusoidal_embedding(**kwargs)


def test_timestep_embedding_shape():
    module = TimestepEmbedding(16)
    out, _ = module.init_with_output(jr.key(0), jnp.arange(3.0))
    assert out.shape == (3, 64)


@pytest.mark.parametrize("time_input", ["constant", "positional"])
@pytest.mark.parametrize(("stride", "pad"), [(1, 1), (2, 1), (1, 0)])
def test_concat_conv_matches_direct_reference(time_input, stride, pad):
    x = jr.normal(jr.key(1), (2, 6, 5, 3))
    t = jnp.array([0.25, 0.8])
    layer = ConcatConv(4, strides=stride, padding=pad, time_input=time_input)
    params = layer.init(jr.key(2), t, x)
    out = layer.apply(params, t, x)
    tt = time_channel(t, 6, 5, time_input)
    xt = np.concatenate([np.asarray(tt), np.asarray(x)], axis=-1)
    p = params["params"]
    expected = reference_conv(xt, np.asarray(p["kernel"]), stride, pad) + p["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_concat_conv_transpose_matches_definition():
    x = jr.normal(jr.key(3), (2, 4, 4, 3))
    layer = ConcatConv(5, kernel_size=4, strides=2, padding=1, transpose=True)
    params = layer.init(jr.key(4), 0.5, x)
    out = layer.apply(params, 0.5, x)
    xt = np.concatenate([np.full((2, 4, 4, 1), 0.5), np.asarray(x)], axis=-1)
    p = params["params"]
    expected = reference_conv_transpose(xt, np.asarray(p["kernel"]), 2, 1) + p["bias"]
    assert out.shape == (2, 8, 8, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
@pytest.mark.parametrize(("stride", "transpose"), [(1, False), (2, False), (2, True)])
def test_concat_conv_matches_torchdiffeq_style(stride, transpose):
    import torch

    class TorchConcatConv2d(torch.nn.Module):
        """torchdiffeq's ConcatConv2d, written from its documented behaviour."""

        def __init__(self, dim_in, dim_out, ksize, stride, padding, transpose):
            super().__init__()
            cls = torch.nn.ConvTranspose2d if transpose else torch.nn.Conv2d
            self.layer = cls(dim_in + 1, dim_out, ksize, stride, padding)

        def forward(self, t, x):
            tt = torch.ones_like(x[:, :1]) * t
            return self.layer(torch.cat([tt, x], 1))

    ksize = 4 if transpose else 3
    torch_layer = TorchConcatConv2d(3, 6, ksize, stride, 1, transpose)
    weight = torch_layer.layer.weight.detach().numpy()
    # PyTorch: Conv2d [out, in, k, k], ConvTranspose2d [in, out, k, k] -> HWIO.
    kernel = weight.transpose(2, 3, 0, 1) if transpose else weight.transpose(2, 3, 1, 0)
    params = {
        "params": {
            "kernel": jnp.asarray(kernel),
            "bias": jnp.asarray(torch_layer.layer.bias.detach().numpy()),
        }
    }
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 7)).astype(np.float32)
    expected = torch_layer(torch.tensor(0.7), torch.tensor(x)).detach().numpy()
    layer = ConcatConv(6, kernel_size=ksize, strides=stride, transpose=transpose)
    out = layer.apply(params, 0.7, jnp.asarray(x.transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(out, expected.transpose(0, 2, 3, 1), atol=1e-5)


def test_concat_conv_bias_init_remedy_parameters():
    layer = ConcatConv(4, time_bias=0.5)
    params = layer.init(jr.key(0), 0.0, jnp.zeros((1, 5, 5, 2)))["params"]
    np.testing.assert_array_equal(params["bias"], np.zeros(4))
    np.testing.assert_array_equal(params["time_bias"], np.full(4, 0.5))


@pytest.mark.parametrize(
    ("t", "x", "kwargs", "match"),
    [
        (0.0, jnp.zeros((2, 5, 5)), {}, "x must have shape"),
        (jnp.zeros(3), jnp.zeros((2, 5, 5, 1)), {}, "t must be"),
        (0.0, jnp.zeros((2, 5, 5, 1)), {"time_input": "sine"}, "time_input"),
    ],
)
def test_concat_conv_rejects_bad_input(t, x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConcatConv(4, **kwargs).init(jr.key(0), t, x)


def test_norm_factory_rejects_bad_choices():
    with pytest.raises(ValueError, match="norm must be one of"):
        make_norm("weight")
    with pytest.raises(ValueError, match="groups must divide"):
        Norm("group", groups=5).init(jr.key(0), jnp.zeros((1, 4, 4, 8)))
    with pytest.raises(ValueError, match="groups must be a positive"):
        make_norm("group", 0)


@pytest.mark.parametrize(
    ("kind", "groups"), [("group", 4), ("layer", 1), ("instance", 8)]
)
def test_norm_matches_parameter_free_reference(kind, groups):
    x = jr.normal(jr.key(0), (3, 4, 4, 8)) * 3.0 + 1.0
    norm = Norm(kind, groups=groups)
    out = norm.apply(norm.init(jr.key(1), x), x)
    np.testing.assert_allclose(out, normalize(x, kind, groups), atol=1e-5)
    as_group = normalize(x, "group", groups)
    np.testing.assert_allclose(out, as_group, atol=1e-5)


def test_batch_norm_uses_batch_stats_in_training_and_running_average_in_eval():
    x = jr.normal(jr.key(0), (8, 3, 3, 4)) * 2.0 + 5.0
    norm = Norm("batch")
    variables = norm.init(jr.key(1), x)
    out, updates = norm.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(out, normalize(x, "batch"), atol=1e-4)
    mean = updates["batch_stats"]["batch_norm"]["mean"]
    np.testing.assert_allclose(mean, 0.1 * np.mean(x, axis=(0, 1, 2)), rtol=1e-5)
    eval_out = norm.apply(variables, x, train=False)  # running stats 0 and 1
    np.testing.assert_allclose(eval_out, x / np.sqrt(1 + 1e-5), rtol=1e-5)


def test_positional_pattern_has_zero_mean_unit_rms():
    pattern = positional_pattern(6, 6, 16)
    np.testing.assert_allclose(pattern.mean(axis=(0, 1)), 0.0, atol=1e-5)
    np.testing.assert_allclose((pattern**2).mean(axis=(0, 1)), 1.0, rtol=1e-4)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_time_conditioned_norm_matches_its_formula(conditioning):
    h = jr.normal(jr.key(0), (2, 4, 4, 8))
    emb = jr.normal(jr.key(1), (2, 6))
    module = TimeConditionedNorm(conditioning, groups=4, time_bias=0.3)
    variables = module.init(jr.key(2), h, emb)
    out = module.apply(variables, h, emb)
    p = variables["params"]
    proj = emb @ p["time_proj"]["kernel"] + p["time_proj"]["bias"]
    affine = p["norm"]["group_norm"]

    def norm(a):
        return normalize(a, "group", 4) * affine["scale"] + affine["bias"]

    tau = proj[:, None, None, :]
    expected = {
        "additive": lambda: norm(h + tau),
        "bias_init": lambda: norm(h + tau),
        "positional": lambda: norm(h + tau * (1 + positional_pattern(4, 4, 8))),
        "add_after_norm": lambda: norm(h) + tau,
        "scale_shift": lambda: norm(h) * (1 + tau[..., :8]) + tau[..., 8:],
    }[conditioning]()
    np.testing.assert_allclose(out, expected, atol=1e-5)
    if conditioning == "bias_init":
        np.testing.assert_allclose(p["time_proj"]["bias"], np.full(8, 0.3))


def test_time_conditioned_norm_rejects_bad_input():
    h, emb = jnp.zeros((2, 4, 4, 8)), jnp.zeros((2, 6))
    with pytest.raises(ValueError, match="conditioning must be one of"):
        TimeConditionedNorm("film").init(jr.key(0), h, emb)
    with pytest.raises(ValueError, match="emb must have shape"):
        TimeConditionedNorm(groups=4).init(jr.key(0), h, jnp.zeros((3, 6)))
    with pytest.raises(ValueError, match="h must have shape"):
        TimeConditionedNorm(groups=4).init(jr.key(0), h[0], emb)


def test_jit_compatible():
    layer = ConcatConv(4)
    x = jnp.ones((2, 5, 5, 3))
    params = layer.init(jr.key(0), 0.0, x)
    out = jax.jit(layer.apply)(params, jnp.float32(0.5), x)
    np.testing.assert_allclose(out, layer.apply(params, 0.5, x), atol=1e-6)
