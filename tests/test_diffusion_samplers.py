"""Each sampler, driven by the exact epsilon-predictor of Gaussian data,
reproduces the data's mean and standard deviation."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from timeaware_jax.diffusion import (
    UNet,
    analytic_gaussian_eps,
    ddim_sample,
    ddpm_sample,
    linear_schedule,
    ode_sample,
    sample,
)
from timeaware_jax.diffusion.samplers import ddim_timesteps

MEAN = np.array([0.5, -0.3], np.float32)
STD = 0.4
NUM = 4096


@pytest.fixture(scope="module")
def schedule():
    return linear_schedule(1000)


@pytest.fixture(scope="module")
def eps_fn(schedule):
    return analytic_gaussian_eps(schedule, jnp.asarray(MEAN), STD)


def _check_moments(x, std_tol):
    x = np.asarray(x)
    assert x.shape == (NUM, 2)
    standard_error = STD / math.sqrt(NUM)
    np.testing.assert_allclose(x.mean(axis=0), MEAN, atol=5 * standard_error)
    np.testing.assert_allclose(x.std(axis=0), STD, rtol=std_tol)


@pytest.mark.parametrize("variance", ["small", "large"])
def test_ancestral_sampler(schedule, eps_fn, variance):
    x = ddpm_sample(
        eps_fn, schedule, jr.key(0), (NUM, 2), variance=variance, clip_denoised=False
    )
    _check_moments(x, std_tol=0.04)


@pytest.mark.parametrize("eta, num_steps", [(0.0, 250), (1.0, 1000)])
def test_ddim_deterministic_and_stochastic(schedule, eps_fn, eta, num_steps):
    # Deterministic DDIM on 250 of 1000 steps shrinks the spread by ~1%.
    # Stochastic DDIM on a coarse subsequence shrinks it more (the posterior
    # spread of x_0 is ignored), so eta = 1 is checked on every step.
    x = ddim_sample(
        eps_fn,
        schedule,
        jr.key(1),
        (NUM, 2),
        num_steps=num_steps,
        eta=eta,
        clip_denoised=False,
    )
    _check_moments(x, std_tol=0.04)


def test_ddim_is_deterministic_at_eta_zero(schedule, eps_fn):
    a = ddim_sample(eps_fn, schedule, jr.key(2), (8, 2), num_steps=20)
    b = ddim_sample(eps_fn, schedule, jr.key(2), (8, 2), num_steps=20)
    np.testing.assert_array_equal(a, b)
    assert ddim_timesteps(1000, 4).tolist() == [249, 499, 749, 999]
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(10, 11)


def test_probability_flow_ode(schedule, eps_fn):
    x, nfe = ode_sample(
        eps_fn, schedule, jr.key(3), (NUM, 2), rtol=1e-4, atol=1e-4, clip_denoised=False
    )
    _check_moments(x, std_tol=0.04)
    # Tsit5 uses 6 new evaluations a step, plus the first and the final denoising.
    assert int(nfe) > 10 and (int(nfe) - 2) % 6 == 0


def test_v_prediction_gives_the_same_samples(schedule, eps_fn):
    # A v-predictor equivalent to eps_fn must give the same DDIM samples.
    def v_fn(x_t, t):
        a = schedule.alpha_bar[t][:, None]
        eps = eps_fn(x_t, t)
        x0 = (x_t - jnp.sqrt(1 - a) * eps) / jnp.sqrt(a)
        return jnp.sqrt(a) * eps - jnp.sqrt(1 - a) * x0

    kwargs = dict(num_steps=20, clip_denoised=False)
    x_eps = ddim_sample(eps_fn, schedule, jr.key(4), (64, 2), **kwargs)
    x_v = ddim_sample(v_fn, schedule, jr.key(4), (64, 2), prediction="v", **kwargs)
    np.testing.assert_allclose(x_eps, x_v, atol=1e-3)


def test_sample_from_a_unet():
    model = UNet(
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        dropout=0.0,
        groups=2,
        image_size=8,
        channels=1,
    )
    shapes = jax.eval_shape(
        model.init, jr.key(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros(1)
    )
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda leaf: 0.1 * rng.standard_normal(leaf.shape, np.float32),
        shapes["params"],
    )
    images, nfe = sample(
        model,
        params,
        linear_schedule(100),
        jr.key(1),
        3,
        sampler="ddim",
        num_steps=5,
        return_nfe=True,
    )
    assert images.shape == (3, 8, 8, 1) and int(nfe) == 5
    assert float(jnp.max(jnp.abs(images))) <= 1.0
    with pytest.raises(ValueError, match="sampler"):
        sample(model, params, linear_schedule(100), jr.key(1), 3, sampler="euler")
