"""What every sampler shares: the model-function protocol and one denoising call.

A sampler drives a *model function* `model_fn(x_t, t) -> output`, with `x_t`
[B, ...] and `t` a [B] array of timestep indices (integers for the discrete
samplers, reals in [-1, T - 1] for the probability-flow ODE). `output` is the
network's prediction of `eps`, `x_0` or `v`, named by `prediction`. Every
sampler turns it into the pair `(eps_hat, x0_hat)` through `denoise`.
"""

from collections.abc import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

from timeaware_jax.diffusion.forward import check_prediction
from timeaware_jax.diffusion.schedules import NoiseSchedule, log_alpha_bar_continuous

SAMPLERS = ("ddpm", "ddim", "ode")

ModelFn = Callable[[Array, Array], Array]


def denoise(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    x_t: Float[Array, "batch ..."],
    t: Float[Array, " batch"],
    *,
    prediction: str = "eps",
    clip_denoised: bool = False,
) -> tuple[Array, Array]:
    """Evaluate the model once and return (eps_hat, x0_hat).

        x0_hat = (x_t - sqrt(1 - a) eps_hat) / sqrt(a),   a = alpha_bar(t)

    (and the analogous conversions for x_0 and v prediction). With
    `clip_denoised`, x0_hat is clipped to [-1, 1] and eps_hat recomputed from it,
    as DDPM does for images.

    Args:
        model_fn: `(x_t, t) -> output`.
        schedule: the noise schedule; alpha_bar is interpolated for real `t`.
        x_t: [B, ...] current state.
        t: [B] timestep indices.
        prediction: "eps", "x0" or "v".
        clip_denoised: clip x0_hat to the data range [-1, 1].

    Returns:
        (eps_hat, x0_hat), float32, each shaped like `x_t`.

    Raises:
        ValueError: for an unknown `prediction`.

    Example:
        >>> eps, x0 = denoise(lambda x, t: 0 * x, linear_schedule(10),
        ...                   jnp.ones((2, 3)), jnp.array([4, 4]))
    """
    check_prediction(prediction)
    a = jnp.exp(log_alpha_bar_continuous(schedule, t.astype(jnp.float32)))
    a = a.reshape((-1,) + (1,) * (x_t.ndim - 1))  # [B] -> [B, 1, ..., 1]
    sqrt_a, sqrt_1ma = jnp.sqrt(a), jnp.sqrt(1.0 - a)
    output = model_fn(x_t, t).astype(jnp.float32)

    if prediction == "eps":
        eps_hat, x0_hat = output, (x_t - sqrt_1ma * output) / sqrt_a
    elif prediction == "x0":
        eps_hat, x0_hat = (x_t - sqrt_a * output) / sqrt_1ma, output
    else:
        eps_hat = sqrt_1ma * x_t + sqrt_a * output
        x0_hat = sqrt_a * x_t - sqrt_1ma * output

    if clip_denoised:
        x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
        eps_hat = (x_t - sqrt_a * x0_hat) / sqrt_1ma
    return eps_hat, x0_hat


def check_choice(name: str, value: object, choices: tuple) -> None:
    """Raise ValueError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
