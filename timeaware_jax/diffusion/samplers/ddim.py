"""DDIM sampling (Song, Meng & Ermon 2021) on a subsequence of the timesteps.

On the subsequence tau_1 < ... < tau_S of {0, ..., T - 1}, from tau_i to
tau_{i-1} (and to "t = -1", alpha_bar = 1, after the last step):

    x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps_hat + sigma z
    sigma  = eta sqrt((1 - a_prev) / (1 - a)) sqrt(1 - a / a_prev)

`eta = 0` is the deterministic DDIM; `eta = 1` matches DDPM's posterior
variance on the subsequence.
"""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from timeaware_jax.diffusion.samplers.base import ModelFn, denoise
from timeaware_jax.diffusion.schedules import NoiseSchedule


def ddim_timesteps(num_timesteps: int, num_steps: int) -> np.ndarray:
    """Evenly spaced timestep indices, increasing, ending at T - 1.

    Raises:
        ValueError: unless 1 <= num_steps <= num_timesteps.

    Example:
        >>> ddim_timesteps(1000, 4).tolist()
        [249, 499, 749, 999]
    """
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(
            f"num_steps must be in [1, {num_timesteps}] (the schedule's T), "
            f"got {num_steps}."
        )
    return np.round(np.linspace(0, num_timesteps, num_steps + 1)[1:]).astype(int) - 1


@functools.partial(
    jax.jit,
    static_argnames=("model_fn", "shape", "num_steps", "prediction", "clip_denoised"),
)
def ddim_sample(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    *,
    num_steps: int = 50,
    eta: float = 0.0,
    prediction: str = "eps",
    clip_denoised: bool = True,
) -> Float[Array, "batch ..."]:
    """Draw samples with `num_steps` DDIM steps (one `lax.scan`).

    Args:
        model_fn: `(x_t [B, ...], t int [B]) -> prediction`; hashable (static).
        schedule: the noise schedule the model was trained with.
        key: PRNG key.
        shape: output shape [B, ...].
        num_steps: S, the length of the timestep subsequence, 1 <= S <= T.
        eta: stochasticity, 0 (deterministic) to 1 (DDPM-like); traced.
        prediction: what `model_fn` predicts: "eps", "x0" or "v".
        clip_denoised: clip x0_hat to [-1, 1] at each step (images).

    Returns:
        x_0 samples of the given shape, float32.

    Raises:
        ValueError: if `num_steps` is out of range or `prediction` unknown.

    Example:
        >>> x = ddim_sample(eps_fn, linear_schedule(1000), jr.key(0), (8, 2),
        ...                 num_steps=50)
    """
    taus = ddim_timesteps(schedule.num_timesteps, num_steps)
    taus_prev = np.append(-1, taus[:-1])
    alpha_bar_ext = jnp.concatenate([jnp.ones((1,)), schedule.alpha_bar])  # [T + 1]
    key_init, key_loop = jr.split(key)
    x_T = jr.normal(key_init, shape)
    batch = shape[0]

    def step(x_t: Array, inputs: tuple[Array, Array, Array]) -> tuple[Array, None]:
        t, t_prev, key_t = inputs
        eps_hat, x0_hat = denoise(
            model_fn,
            schedule,
            x_t,
            jnp.full((batch,), t),
            prediction=prediction,
            clip_denoised=clip_denoised,
        )
        a, a_prev = alpha_bar_ext[t + 1], alpha_bar_ext[t_prev + 1]
        sigma = eta * jnp.sqrt((1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev))
        direction = jnp.sqrt(jnp.maximum(1.0 - a_prev - sigma**2, 0.0)) * eps_hat
        z = jr.normal(key_t, shape)
        return jnp.sqrt(a_prev) * x0_hat + direction + sigma * z, None

    inputs = (
        jnp.asarray(taus[::-1]),
        jnp.asarray(taus_prev[::-1]),
        jr.split(key_loop, num_steps),
    )
    x_0, _ = jax.lax.scan(step, x_T, inputs)
    return x_0
