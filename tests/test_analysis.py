"""The analysis against closed forms, Monte Carlo and the layers themselves."""

import functools

import flax.linen as nn
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from timeaware_jax.analysis import (
    center_over_statistics_set,
    concat_conv_survival,
    concat_conv_time_field,
    normalized_time_rms,
    offset_survival,
    probe_time_variance,
    surviving_fraction,
    time_variance_ratio,
)
from timeaware_jax.diagnose import build_variant, diagnose_variant, reference_images
from timeaware_jax.nn import ConcatConv


@pytest.mark.parametrize(
    ("channels", "groups"), [(64, 32), (128, 32), (64, 8), (64, 1)]
)
def test_one_minus_one_over_m_law_against_monte_carlo(channels, groups):
    tau = jr.normal(jr.key(0), (4000, 1, 1, channels))  # i.i.d. per-channel offsets
    centered = center_over_statistics_set(tau, "group", groups)
    measured = float(jnp.sum(centered**2) / jnp.sum(tau**2))
    predicted = surviving_fraction("group", channels, groups)
    assert predicted == pytest.approx(1 - groups / channels)
    assert measured == pytest.approx(predicted, rel=0.03)


def test_relative_variance_factor_against_monte_carlo():
    # Offsets of variance sigma^2 over channels on features of variance v; the
    # time part of the normalized output is (tau - mean_S tau) / std_S(h + tau).
    n, pixels, groups, m, sigma2, v = 200, 16, 8, 64, 0.5, 2.0
    key_h, key_tau = jr.split(jr.key(1))
    h = jr.normal(key_h, (n, pixels, groups, m)) * jnp.sqrt(v)
    tau = jr.normal(key_tau, (n, 1, groups, m)) * jnp.sqrt(sigma2)
    a = h + tau
    time_part = (tau - jnp.mean(tau, axis=(1, 3), keepdims=True)) / jnp.std(
        a, axis=(1, 3), keepdims=True
    )
    measured = float(jnp.sqrt(jnp.mean(time_part**2)))
    predicted = normalized_time_rms("group", groups * m, groups, rho=sigma2 / v)
    assert measured == pytest.approx(predicted, rel=0.03)


def test_theory_table():
    assert surviving_fraction("instance", 64) == 0.0
    assert surviving_fraction("batch", 64) == 0.0
    assert surviving_fraction("batch", 64, shared_t=False, batch=128) == 1 - 1 / 128
    assert surviving_fraction("layer", 64) == 1 - 1 / 64
    assert surviving_fraction("none", 64) == 1.0
    with pytest.raises(ValueError, match="batch must be"):
        surviving_fraction("batch", 64, shared_t=False)
    with pytest.raises(ValueError, match="groups must divide"):
        surviving_fraction("group", 64, 5)


def constant_offsets(num_times=8, channels=16):
    emb = jnp.linspace(-1, 1, num_times)[:, None] * jnp.ones((1, 3))
    kernel = jr.normal(jr.key(2), (3, channels))
    return kernel, jnp.ones(channels), emb


@pytest.mark.parametrize(("norm", "shared_t"), [("instance", False), ("batch", True)])
def test_spatially_constant_offsets_vanish_exactly(norm, shared_t):
    kernel, bias, emb = constant_offsets()
    survival = offset_survival(kernel, bias, emb, 5, 5, norm, shared_t=shared_t)
    assert survival.total > 1.0
    assert survival.surviving <= 1e-6


def test_positional_offsets_survive_instance_norm():
    kernel, bias, emb = constant_offsets()
    survival = offset_survival(kernel, bias, emb, 5, 5, "instance", positional=True)
    assert survival.fraction > 0.4


@pytest.mark.parametrize("time_input", ["constant", "positional"])
def test_border_field_equals_the_layer_run_on_zero_features(time_input):
    layer = ConcatConv(8, time_input=time_input)
    x = jnp.zeros((1, 7, 7, 3))
    params = layer.init(jr.key(3), 0.0, x)
    ts = jnp.array([0.0, 0.3, 1.0])
    run = jnp.concatenate([layer.apply(params, t, x) for t in ts])
    bias = params["params"]["bias"]
    field = concat_conv_time_field(
        params["params"]["kernel"], ts, 7, 7, time_input=time_input
    )
    np.testing.assert_allclose(field, run - bias, atol=1e-6)
    if time_input == "constant":  # interior constant, border partial sums
        interior = field[2, 1:-1, 1:-1]
        np.testing.assert_allclose(
            interior, interior[:1, :1].repeat(5, 0).repeat(5, 1), atol=1e-6
        )
        assert not np.allclose(field[2, 0, 0], field[2, 3, 3])


def test_concat_conv_under_instance_norm_keeps_only_the_border():
    kernel = jr.normal(jr.key(4), (3, 3, 5, 64))
    survival = concat_conv_survival(kernel, 6, 6, "instance")
    assert 0.0 < survival.fraction < 1.0
    assert survival.border_fraction > 0.5
    no_padding = concat_conv_survival(kernel, 6, 6, "instance", padding=0)
    assert no_padding.surviving <= 1e-6 * no_padding.total


def test_time_variance_ratio_closed_form():
    ts = np.linspace(0, 1, 5)
    xs = np.linspace(-2, 2, 7)
    g = 3.0 * ts[:, None] + 0.5 * xs[None, :]  # g(x, t) = a t + b x
    expected = 9.0 * np.var(ts) / (0.25 * np.var(xs))
    assert time_variance_ratio(g) == pytest.approx(expected)
    with pytest.raises(ValueError, match="values must have shape"):
        time_variance_ratio(np.zeros(3))


class Toy(nn.Module):
    """A per-channel time offset, then InstanceNorm: blind to `t` after it."""

    @nn.compact
    def __call__(self, x, t):
        h = nn.Conv(4, (1, 1))(x) + t[:, None, None, None] * jnp.arange(1.0, 5.0)
        return nn.GroupNorm(num_groups=4, use_scale=False, use_bias=False)(h)


def test_probe_sees_time_vanish_and_measures_sensitivity():
    x = jr.normal(jr.key(5), (6, 3, 3, 2))
    model = Toy()
    variables = model.init(jr.key(6), x, jnp.zeros(6))
    result = probe_time_variance(model.apply, variables, x, [0.0, 0.5, 1.0])
    assert result.ratio("Conv_0") == pytest.approx(0.0, abs=1e-12)
    assert result.ratio("GroupNorm_0", "in") > 0.1
    assert result.ratio("GroupNorm_0", "out") == pytest.approx(0.0, abs=1e-8)
    assert result.output_ratio == pytest.approx(0.0, abs=1e-8)
    assert result.sensitivity == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="ts must hold"):
        probe_time_variance(model.apply, variables, x, [0.0])
    with pytest.raises(ValueError, match="x must hold"):
        probe_time_variance(model.apply, variables, x[:1], [0.0, 1.0])


def test_probe_sensitivity_of_a_linear_function_of_t():
    def apply_fn(variables, x, t):
        return x * t[:, None]

    x = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    result = probe_time_variance(apply_fn, {}, x, [1.0, 2.0])
    rms_x = float(jnp.sqrt(jnp.mean(x**2)))
    expected = np.mean([rms_x / (rms_x * t) for t in (1.0, 2.0)])
    assert result.sensitivity == pytest.approx(expected, rel=1e-5)


@functools.cache
def node_diagnosis(remedy, norm="group"):
    images = reference_images("digits", 8)
    return diagnose_variant(build_variant("node", remedy, images=images, norm=norm))


def exact_mean(diagnosis):
    return np.mean([layer.exact.fraction for layer in diagnosis.layers])


def measured_mean(diagnosis):
    return np.mean([s for *_, s in diagnosis.probe.norm_survival() if np.isfinite(s)])


def test_walker_finds_every_time_dependent_layer():
    diagnosis = node_diagnosis("baseline")
    names = [layer.name for layer in diagnosis.layers]
    assert names == ["conv1", "conv2"]
    for layer in diagnosis.layers:
        assert layer.m == 2 and layer.predicted == 0.5
        assert layer.norm_name is not None
        assert 0.3 < layer.exact.fraction < 0.8


def test_fewer_groups_and_positional_raise_survival_above_baseline():
    baseline = node_diagnosis("baseline")
    for remedy in ("fewer_groups", "positional"):
        remedied = node_diagnosis(remedy)
        assert exact_mean(remedied) > exact_mean(baseline) + 0.1
        assert measured_mean(remedied) > measured_mean(baseline) + 0.1


def test_conditioning_after_the_norm_keeps_the_time_signal():
    baseline = node_diagnosis("baseline")
    for remedy in ("scale_shift", "add_after_norm"):
        remedied = node_diagnosis(remedy)
        assert all(layer.exact.fraction == 1.0 for layer in remedied.layers)
        assert remedied.probe.output_ratio > 3 * baseline.probe.output_ratio


def test_bias_init_leaves_exact_survival_unchanged_as_theory_predicts():
    # A time-independent bias adds no time variance, so the centering removes
    # exactly as much as in the baseline: the kernels are the same draws.
    baseline, remedied = node_diagnosis("baseline"), node_diagnosis("bias_init")
    for a, b in zip(baseline.layers, remedied.layers, strict=True):
        assert b.exact.fraction == pytest.approx(a.exact.fraction, rel=1e-6)
