"""Schedules, the forward process, losses and the U-Net against closed forms."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from timeaware_jax.diffusion import (
    UNet,
    analytic_gaussian_eps,
    cosine_schedule,
    count_parameters,
    diffusion_loss,
    linear_schedule,
    log_alpha_bar_continuous,
    make_schedule,
    posterior_mean,
    q_sample,
    regression_target,
    to_eps_and_x0,
)
from timeaware_jax.diffusion.grid import image_grid
from timeaware_jax.nn import CONDITIONINGS


@pytest.fixture(scope="module")
def linear():
    return linear_schedule(1000)


def test_linear_schedule_closed_forms(linear):
    beta = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - beta)
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    np.testing.assert_allclose(linear.beta, beta, rtol=1e-6)
    np.testing.assert_allclose(linear.alpha_bar, alpha_bar, rtol=1e-5)
    np.testing.assert_allclose(
        linear.posterior_variance,
        beta * (1 - alpha_bar_prev) / (1 - alpha_bar),
        rtol=1e-5,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        linear.posterior_log_variance_clipped[0], np.log(linear.posterior_variance[1])
    )
    # DDPM's end point: alpha_bar_T is about 4e-5, so x_T is nearly pure noise.
    assert 3e-5 < float(linear.alpha_bar[-1]) < 5e-5


def test_posterior_mean_is_the_gaussian_conditional(linear):
    # q(x_{t-1} | x_t, x_0) from Bayes on the Gaussians q(x_t | x_{t-1}) and
    # q(x_{t-1} | x_0): precision-weighted mean.
    t = np.array([1, 10, 500, 999])
    beta, ab_prev = np.asarray(linear.beta)[t], np.asarray(linear.alpha_bar_prev)[t]
    x_0, x_t = np.array([0.3, -1.0, 0.7, 2.0]), np.array([1.0, 0.5, -0.2, 0.1])
    precision = (1 - beta) / beta + 1 / (1 - ab_prev)
    mean = (np.sqrt(1 - beta) * x_t / beta + np.sqrt(ab_prev) * x_0 / (1 - ab_prev)) / (
        precision
    )
    got = posterior_mean(linear, jnp.asarray(x_0), jnp.asarray(x_t), jnp.asarray(t))
    np.testing.assert_allclose(got, mean, rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(linear.posterior_variance)[t], 1 / precision, rtol=1e-4
    )


def test_cosine_schedule_matches_its_alpha_bar():
    schedule = cosine_schedule(1000)
    u = np.arange(1, 1001) / 1000
    f = np.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2
    f0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    # Equal where no beta was clipped at 0.999 (all but the last steps).
    np.testing.assert_allclose(schedule.alpha_bar[:990], (f / f0)[:990], rtol=1e-4)
    assert float(schedule.beta.max()) <= 0.999 + 1e-6


def test_continuous_alpha_bar_interpolates_the_grid(linear):
    t = jnp.array([-1.0, 0.0, 17.0, 999.0])
    np.testing.assert_allclose(
        jnp.exp(log_alpha_bar_continuous(linear, t)),
        np.append(1.0, np.asarray(linear.alpha_bar)[[0, 17, 999]]),
        rtol=1e-5,
    )


def test_q_sample_moments_by_monte_carlo(linear):
    t = jnp.full((20000,), 300)
    x_0 = jnp.full((20000, 1), 0.8)
    x_t = q_sample(linear, x_0, t, jr.normal(jr.key(0), x_0.shape))
    a = float(linear.alpha_bar[300])
    assert abs(float(x_t.mean()) - math.sqrt(a) * 0.8) < 4 / math.sqrt(20000)
    assert abs(float(x_t.var()) / (1 - a) - 1) < 0.05


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_targets_convert_back_to_eps_and_x0(linear, prediction):
    key_x, key_eps = jr.split(jr.key(1))
    x_0 = jr.normal(key_x, (6, 3))
    eps = jr.normal(key_eps, (6, 3))
    t = jnp.array([0, 5, 100, 400, 800, 999])
    x_t = q_sample(linear, x_0, t, eps)
    target = regression_target(linear, x_0, t, eps, prediction)
    eps_hat, x0_hat = to_eps_and_x0(linear, x_t, t, target, prediction)
    np.testing.assert_allclose(eps_hat, eps, atol=2e-3)
    np.testing.assert_allclose(x0_hat, x_0, atol=2e-3)


def test_loss_of_zero_and_of_the_optimal_predictor(linear):
    # Zero predictor: E[eps^2] = 1. Optimal predictor on N(mu, s^2) data:
    # E[Var(eps | x_t)] = E_t[a s^2 / (a s^2 + 1 - a)] < 1.
    x_0 = 0.5 + 0.3 * jr.normal(jr.key(2), (4096, 4))
    zero, _ = diffusion_loss(lambda x_t, t: 0 * x_t, linear, x_0, jr.key(3))
    optimal, _ = diffusion_loss(
        analytic_gaussian_eps(linear, 0.5, 0.3), linear, x_0, jr.key(3)
    )
    a = np.asarray(linear.alpha_bar)
    expected = np.mean(a * 0.09 / (a * 0.09 + 1 - a))
    assert abs(float(zero) - 1) < 0.03
    assert abs(float(optimal) - expected) < 0.03


def test_bad_choices_raise():
    with pytest.raises(ValueError, match="schedule"):
        make_schedule("quadratic")
    with pytest.raises(ValueError, match="prediction"):
        regression_target(linear_schedule(10), jnp.ones(2), jnp.zeros(2, int), 0, "y")
    with pytest.raises(ValueError, match="num_timesteps"):
        linear_schedule(0)


def test_unet_parameter_count_at_the_cifar10_configuration():
    # Ho et al.'s CIFAR-10 model: 35.7 M parameters; the reference TensorFlow
    # model has exactly 35,746,307.
    model = UNet()
    shapes = jax.eval_shape(
        model.init, jr.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,))
    )
    assert count_parameters(shapes["params"]) == 35_746_307


def _tiny_unet(**kwargs):
    defaults = dict(
        ch=16,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(4,),
        dropout=0.1,
        groups=4,
        image_size=8,
        channels=1,
    )
    return UNet(**{**defaults, **kwargs})


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_unet_builds_with_every_conditioning(conditioning):
    model = _tiny_unet(conditioning=conditioning)
    x, t = jnp.zeros((2, 8, 8, 1)), jnp.zeros((2,))
    shapes = jax.eval_shape(model.init, jr.key(0), x, t)
    out = jax.eval_shape(model.apply, shapes, x, t)
    assert out.shape == (2, 8, 8, 1)
    time_proj = shapes["params"]["down_0_block_0"]["cond_norm2"]["time_proj"]
    width = 32 if conditioning == "scale_shift" else 16
    assert time_proj["kernel"].shape == (64, width)


def test_unet_output_depends_on_t_after_a_perturbation():
    # conv2 and conv_out start at zero, so at init the output is 0 for every t;
    # with random parameters everywhere the output must depend on t.
    model = _tiny_unet()
    x = jr.normal(jr.key(0), (2, 8, 8, 1))
    shapes = jax.eval_shape(model.init, jr.key(1), x, jnp.zeros((2,)))["params"]
    rng = np.random.default_rng(2)
    params = jax.tree.map(
        lambda leaf: 0.1 * rng.standard_normal(leaf.shape, np.float32), shapes
    )
    apply = jax.jit(lambda p, t: model.apply({"params": p}, x, t))
    out_a, out_b = (
        apply(params, jnp.array([3, 3])),
        apply(params, jnp.array([700, 700])),
    )
    assert out_a.shape == (2, 8, 8, 1)
    assert float(jnp.max(jnp.abs(out_a - out_b))) > 1e-3


def test_unet_rejects_an_indivisible_image():
    model = _tiny_unet()
    with pytest.raises(ValueError, match="divisible"):
        jax.eval_shape(model.init, jr.key(0), jnp.zeros((1, 7, 7, 1)), jnp.zeros(1))


def test_image_grid_layout():
    images = -np.ones((5, 4, 4, 1))
    images[2] = 1.0
    grid = image_grid(images, num_cols=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert grid[1:5, 11:15].min() == 255 and grid[1:5, 1:5].max() == 0
