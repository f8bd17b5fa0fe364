"""Draw images from a U-Net and its parameters with any of the samplers."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from timeaware_jax.diffusion.samplers import (
    SAMPLERS,
    ddim_sample,
    ddpm_sample,
    ode_sample,
)
from timeaware_jax.diffusion.samplers.base import check_choice
from timeaware_jax.diffusion.schedules import NoiseSchedule


@functools.partial(
    jax.jit,
    static_argnames=(
        "model",
        "num_samples",
        "sampler",
        "prediction",
        "num_steps",
        "variance",
        "solver",
        "clip_denoised",
    ),
)
def _sample(
    model,
    params,
    schedule,
    key,
    eta,
    rtol,
    atol,
    *,
    num_samples,
    sampler,
    prediction,
    num_steps,
    variance,
    solver,
    clip_denoised,
):
    def model_fn(x_t: Array, t: Array) -> Array:
        return model.apply({"params": params}, x_t, t, train=False)

    shape = (num_samples, model.image_size, model.image_size, model.channels)
    common = dict(prediction=prediction, clip_denoised=clip_denoised)
    if sampler == "ddpm":
        x_0 = ddpm_sample(model_fn, schedule, key, shape, variance=variance, **common)
        return x_0, jnp.asarray(schedule.num_timesteps)
    if sampler == "ddim":
        steps = num_steps or 50
        x_0 = ddim_sample(
            model_fn, schedule, key, shape, num_steps=steps, eta=eta, **common
        )
        return x_0, jnp.asarray(steps)
    return ode_sample(
        model_fn,
        schedule,
        key,
        shape,
        solver=solver,
        rtol=rtol,
        atol=atol,
        num_steps=num_steps,
        **common,
    )


def sample(
    model: nn.Module,
    params,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    num_samples: int,
    *,
    sampler: str = "ddpm",
    prediction: str = "eps",
    num_steps: int | None = None,
    eta: float = 0.0,
    variance: str = "small",
    solver: str = "tsit5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    clip_denoised: bool = True,
    return_nfe: bool = False,
) -> Float[Array, "num height width channels"] | tuple[Array, Int[Array, ""]]:
    """Draw `num_samples` images from a trained U-Net (compiled once per model).

    Args:
        model: a `UNet` (its `image_size` and `channels` give the shape).
        params: its parameters (the `params` collection, e.g. the EMA).
        schedule: the schedule it was trained with.
        key: PRNG key.
        num_samples: batch of images to draw.
        sampler: "ddpm" (T ancestral steps), "ddim" (`num_steps`, default 50,
            and `eta`) or "ode" (probability flow with diffrax `solver`,
            `rtol`, `atol`; a fixed `num_steps` if given).
        prediction: what the model predicts: "eps", "x0" or "v".
        num_steps: DDIM steps, or fixed ODE steps.
        eta: DDIM stochasticity in [0, 1].
        variance: ancestral variance, "small" or "large".
        solver: ODE solver name (see `samplers.SOLVERS`).
        rtol, atol: ODE tolerances.
        clip_denoised: clip predicted x_0 to [-1, 1].
        return_nfe: also return the number of network evaluations.

    Returns:
        Images [num_samples, H, W, C] in [-1, 1] (float32), and the NFE if
        `return_nfe`.

    Raises:
        ValueError: for an unknown sampler, or a model without `image_size`
            and `channels`.

    Example:
        >>> model, params, schedule, config = load_checkpoint("runs/digits")
        >>> images = sample(model, params, schedule, jr.key(0), 16, sampler="ddim")
    """
    check_choice("sampler", sampler, SAMPLERS)
    if not (hasattr(model, "image_size") and hasattr(model, "channels")):
        raise ValueError(
            f"model must have image_size and channels attributes (a UNet), got "
            f"{type(model).__name__}."
        )
    x_0, nfe = _sample(
        model,
        params,
        schedule,
        key,
        jnp.float32(eta),
        jnp.float32(rtol),
        jnp.float32(atol),
        num_samples=num_samples,
        sampler=sampler,
        prediction=prediction,
        num_steps=num_steps,
        variance=variance,
        solver=solver,
        clip_denoised=clip_denoised,
    )
    x_0 = jnp.clip(x_0, -1.0, 1.0)
    return (x_0, nfe) if return_nfe else x_0
