"""The denoising loss of DDPM, with epsilon, x_0 or v as the regression target.

    L(theta) = E_{x_0, t ~ U{0..T-1}, eps ~ N(0, I)} || target - f_theta(x_t, t) ||^2

with `x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps` and `target` equal
to `eps` (Ho et al.'s L_simple), `x_0`, or `v` (Salimans & Ho). The squared
error is averaged over every element, as in the reference implementation.
"""

from collections.abc import Callable

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from timeaware_jax.diffusion.forward import check_prediction, q_sample, v_target
from timeaware_jax.diffusion.schedules import NoiseSchedule, log_alpha_bar_continuous

ModelFn = Callable[[Array, Array], Array]


def regression_target(
    schedule: NoiseSchedule,
    x_0: Float[Array, "batch ..."],
    t: Int[Array, " batch"],
    eps: Float[Array, "batch ..."],
    prediction: str = "eps",
) -> Float[Array, "batch ..."]:
    """What the network should output under `prediction` ("eps", "x0" or "v")."""
    check_prediction(prediction)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x_0
    return v_target(schedule, x_0, t, eps)


def diffusion_loss(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    x_0: Float[Array, "batch ..."],
    key: PRNGKeyArray,
    *,
    prediction: str = "eps",
) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Monte Carlo estimate of the denoising loss on one batch.

        t ~ U{0, ..., T - 1}, eps ~ N(0, I),
        loss = mean((target(x_0, t, eps) - model_fn(x_t, t)) ** 2)

    Args:
        model_fn: `(x_t [B, ...], t int [B]) -> output [B, ...]`, e.g. a closure
            over `UNet.apply` with its parameters and dropout key.
        schedule: the noise schedule.
        x_0: clean data [B, ...], images scaled to [-1, 1].
        key: PRNG key for the timesteps and the noise.
        prediction: the target, one of `PREDICTIONS`.

    Returns:
        (loss, aux) where `aux["loss_per_example"]` is [B] and `aux["t"]` the
        sampled timesteps.

    Raises:
        ValueError: for an unknown `prediction`.

    Example:
        >>> s = linear_schedule(100)
        >>> model_fn = lambda x_t, t: 0 * x_t
        >>> loss, _ = diffusion_loss(model_fn, s, jnp.zeros((4, 2)), jr.key(0))
    """
    check_prediction(prediction)
    key_t, key_eps = jr.split(key)
    t = jr.randint(key_t, (x_0.shape[0],), 0, schedule.num_timesteps)
    eps = jr.normal(key_eps, x_0.shape, x_0.dtype)

    x_t = q_sample(schedule, x_0, t, eps)
    target = regression_target(schedule, x_0, t, eps, prediction)
    output = model_fn(x_t, t).astype(jnp.float32)

    per_example = jnp.mean(
        jnp.square(target - output).reshape(x_0.shape[0], -1), axis=-1
    )  # [B, ...] -> [B, prod(...)] -> [B]
    return jnp.mean(per_example), {"loss_per_example": per_example, "t": t}


def analytic_gaussian_eps(
    schedule: NoiseSchedule, mean: float | Array, std: float | Array
) -> ModelFn:
    """The exact minimiser of the epsilon loss for data x_0 ~ N(mean, std^2 I).

        eps_hat(x_t, t) = sqrt(1 - a) (x_t - sqrt(a) mean) / (a std^2 + 1 - a)

    with `a = alpha_bar_t`: the posterior mean of eps given x_t. Useful to test
    samplers against a distribution they must reproduce. `t` may be an integer
    index or, for the probability-flow ODE, a real one in [-1, T - 1].

    Example:
        >>> eps_fn = analytic_gaussian_eps(linear_schedule(10), 0.5, 0.2)
    """

    def eps_fn(x_t: Array, t: Array) -> Array:
        a = jnp.exp(log_alpha_bar_continuous(schedule, t.astype(jnp.float32)))
        a = a.reshape((-1,) + (1,) * (x_t.ndim - 1))  # [B] -> [B, 1, ..., 1]
        return jnp.sqrt(1.0 - a) * (x_t - jnp.sqrt(a) * mean) / (a * std**2 + 1.0 - a)

    return eps_fn
