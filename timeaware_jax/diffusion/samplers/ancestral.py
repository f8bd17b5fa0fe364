"""Ancestral sampling of DDPM (Ho et al. 2020, Algorithm 2).

For t = T - 1, ..., 0:

    x0_hat  = denoise(x_t, t)
    x_{t-1} = c0_t x0_hat + ct_t x_t + sigma_t z,    z ~ N(0, I) (z = 0 at t = 0)

with the posterior-mean coefficients of `NoiseSchedule` and `sigma_t^2` either
the posterior variance `beta_tilde_t` ("small") or `beta_t` ("large"; DDPM's
CIFAR-10 choice, with `beta_tilde_1` at the first step).
"""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

from timeaware_jax.diffusion.samplers.base import ModelFn, check_choice, denoise
from timeaware_jax.diffusion.schedules import NoiseSchedule

VARIANCES = ("small", "large")


def _log_variance(schedule: NoiseSchedule, variance: str) -> Array:
    if variance == "small":
        return schedule.posterior_log_variance_clipped
    first = schedule.posterior_variance[1:2] if schedule.num_timesteps > 1 else None
    if first is None:
        return jnp.log(schedule.beta)
    return jnp.log(jnp.concatenate([first, schedule.beta[1:]]))


@functools.partial(
    jax.jit,
    static_argnames=("model_fn", "shape", "prediction", "variance", "clip_denoised"),
)
def ddpm_sample(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    *,
    prediction: str = "eps",
    variance: str = "small",
    clip_denoised: bool = True,
) -> Float[Array, "batch ..."]:
    """Draw samples with T steps of the ancestral DDPM sampler (one `lax.scan`).

    Args:
        model_fn: `(x_t [B, ...], t int [B]) -> prediction`; hashable, since it
            is a static argument of the compiled function.
        schedule: the noise schedule the model was trained with.
        key: PRNG key.
        shape: output shape [B, ...], e.g. (16, 32, 32, 3).
        prediction: what `model_fn` predicts: "eps", "x0" or "v".
        variance: "small" (posterior variance) or "large" (beta_t).
        clip_denoised: clip x0_hat to [-1, 1] at each step (images).

    Returns:
        x_0 samples of the given shape, float32.

    Raises:
        ValueError: for an unknown `variance` or `prediction`.

    Example:
        >>> x = ddpm_sample(eps_fn, linear_schedule(1000), jr.key(0), (8, 2))
    """
    check_choice("variance", variance, VARIANCES)
    key_init, key_loop = jr.split(key)
    x_T = jr.normal(key_init, shape)
    log_var = _log_variance(schedule, variance)
    batch = shape[0]

    def step(x_t: Array, inputs: tuple[Array, Array]) -> tuple[Array, None]:
        t, key_t = inputs
        t_batch = jnp.full((batch,), t)
        _, x0_hat = denoise(
            model_fn,
            schedule,
            x_t,
            t_batch,
            prediction=prediction,
            clip_denoised=clip_denoised,
        )
        mean = (
            schedule.posterior_mean_coef_x0[t] * x0_hat
            + schedule.posterior_mean_coef_xt[t] * x_t
        )
        z = jr.normal(key_t, shape) * (t > 0)
        return mean + jnp.exp(0.5 * log_var[t]) * z, None

    ts = jnp.arange(schedule.num_timesteps)[::-1]  # T - 1, ..., 0
    keys = jr.split(key_loop, schedule.num_timesteps)
    x_0, _ = jax.lax.scan(step, x_T, (ts, keys))
    return x_0
