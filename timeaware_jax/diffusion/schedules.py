"""Discrete noise schedules of DDPM and every quantity derived from them.

A schedule is a sequence `beta_1, ..., beta_T` of per-step noise variances.
Everything else is a closed form of it (Ho et al. 2020, eq. 4, 6, 7):

    alpha_t           = 1 - beta_t
    alpha_bar_t       = prod_{s <= t} alpha_s
    q(x_t | x_0)      = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    beta_tilde_t      = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
    mu_tilde_t        = c0_t x_0 + ct_t x_t,
    c0_t              = beta_t sqrt(alpha_bar_{t-1}) / (1 - alpha_bar_t),
    ct_t              = (1 - alpha_bar_{t-1}) sqrt(alpha_t) / (1 - alpha_bar_t).

Timesteps are integer indices `t = 0, ..., T - 1` (index `t` is the paper's
step `t + 1`); `alpha_bar_prev[0] = 1`.
"""

import math

import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float

SCHEDULES = ("linear", "cosine")


@struct.dataclass
class NoiseSchedule:
    """All per-step quantities of a discrete schedule, as float32 arrays [T].

    A pytree, so it can be passed through `jax.jit` as an argument. Build it with
    `make_schedule`, `linear_schedule` or `cosine_schedule`.
    """

    beta: Float[Array, " T"]
    alpha: Float[Array, " T"]
    alpha_bar: Float[Array, " T"]
    alpha_bar_prev: Float[Array, " T"]
    sqrt_alpha_bar: Float[Array, " T"]
    sqrt_one_minus_alpha_bar: Float[Array, " T"]
    posterior_variance: Float[Array, " T"]
    posterior_log_variance_clipped: Float[Array, " T"]
    posterior_mean_coef_x0: Float[Array, " T"]
    posterior_mean_coef_xt: Float[Array, " T"]

    @property
    def num_timesteps(self) -> int:
        """The number of diffusion steps T."""
        return self.beta.shape[0]


def from_betas(beta: np.ndarray) -> NoiseSchedule:
    """Build a `NoiseSchedule` from per-step variances.

    Quantities are computed in float64 and stored in float32.

    Args:
        beta: [T] values in (0, 1).

    Returns:
        The schedule.

    Raises:
        ValueError: if `beta` is not one-dimensional or leaves (0, 1].

    Example:
        >>> schedule = from_betas(np.linspace(1e-4, 0.02, 1000))
        >>> schedule.num_timesteps
        1000
    """
    beta = np.asarray(beta, dtype=np.float64)
    if beta.ndim != 1 or beta.size < 1:
        raise ValueError(f"beta must be a non-empty 1-D array, got shape {beta.shape}.")
    if not (np.all(beta > 0) and np.all(beta <= 1)):
        raise ValueError(
            f"beta must lie in (0, 1], got min {beta.min()} and max {beta.max()}."
        )
    alpha = 1.0 - beta
    alpha_bar = np.cumprod(alpha)
    alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
    posterior_variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    # The variance is 0 at t = 0; clip the log as DDPM does (use step 1's value).
    log_var = np.log(np.append(posterior_variance[1:2], posterior_variance[1:]))
    if beta.size == 1:
        log_var = np.log(np.maximum(posterior_variance, 1e-20))
    fields = dict(
        beta=beta,
        alpha=alpha,
        alpha_bar=alpha_bar,
        alpha_bar_prev=alpha_bar_prev,
        sqrt_alpha_bar=np.sqrt(alpha_bar),
        sqrt_one_minus_alpha_bar=np.sqrt(1.0 - alpha_bar),
        posterior_variance=posterior_variance,
        posterior_log_variance_clipped=log_var,
        posterior_mean_coef_x0=beta * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar),
        posterior_mean_coef_xt=(1.0 - alpha_bar_prev)
        * np.sqrt(alpha)
        / (1.0 - alpha_bar),
    )
    return NoiseSchedule(**{k: jnp.asarray(v, jnp.float32) for k, v in fields.items()})


def linear_schedule(
    num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> NoiseSchedule:
    """DDPM's linear schedule, `beta_t` evenly spaced from `beta_start` to `beta_end`.

    Ho et al. use T = 1000, 1e-4 to 0.02. For other T the end points are
    rescaled by 1000 / T so that the total noise stays comparable (as in
    improved-diffusion).

    Args:
        num_timesteps: T >= 1.
        beta_start: beta_1 at T = 1000.
        beta_end: beta_T at T = 1000.

    Returns:
        The schedule.

    Raises:
        ValueError: if `num_timesteps` < 1.

    Example:
        >>> float(linear_schedule().beta[-1])
        0.02
    """
    _check_num_timesteps(num_timesteps)
    scale = 1000.0 / num_timesteps
    beta = np.linspace(scale * beta_start, scale * beta_end, num_timesteps)
    return from_betas(np.minimum(beta, 0.999))


def cosine_schedule(
    num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999
) -> NoiseSchedule:
    """The cosine schedule of Nichol & Dhariwal (2021).

        alpha_bar(u) = f(u) / f(0),   f(u) = cos(((u + s) / (1 + s)) pi / 2)^2,
        beta_t = min(1 - alpha_bar(t / T) / alpha_bar((t - 1) / T), max_beta).

    Args:
        num_timesteps: T >= 1.
        s: small offset that keeps beta_1 from being tiny.
        max_beta: clip that avoids the singularity at u = 1.

    Returns:
        The schedule.

    Raises:
        ValueError: if `num_timesteps` < 1.

    Example:
        >>> schedule = cosine_schedule(1000)
        >>> float(schedule.beta.max()) <= 0.999
        True
    """
    _check_num_timesteps(num_timesteps)
    u = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    f = np.cos((u + s) / (1.0 + s) * math.pi / 2.0) ** 2
    alpha_bar = f / f[0]
    beta = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return from_betas(np.minimum(beta, max_beta))


def make_schedule(name: str, num_timesteps: int = 1000) -> NoiseSchedule:
    """The schedule called `name` (one of `SCHEDULES`) with T steps.

    Raises:
        ValueError: for an unknown name.

    Example:
        >>> make_schedule("cosine", 100).num_timesteps
        100
    """
    if name == "linear":
        return linear_schedule(num_timesteps)
    if name == "cosine":
        return cosine_schedule(num_timesteps)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}.")


def _check_num_timesteps(num_timesteps: int) -> None:
    if int(num_timesteps) != num_timesteps or num_timesteps < 1:
        raise ValueError(
            f"num_timesteps must be a positive integer, got {num_timesteps!r}."
        )


def log_alpha_bar_continuous(
    schedule: NoiseSchedule, t: Float[Array, "..."]
) -> Float[Array, "..."]:
    """log alpha_bar at a real-valued timestep index t in [-1, T - 1].

    Piecewise linear in log space through the points `(t, log alpha_bar_t)` for
    integer `t` and `(-1, 0)`: exact at integer `t`, and the continuous-time
    schedule used by the probability-flow ODE in between.

    Example:
        >>> s = linear_schedule(10)
        >>> float(log_alpha_bar_continuous(s, jnp.asarray(-1.0)))
        0.0
    """
    num_timesteps = schedule.num_timesteps
    grid = jnp.arange(-1, num_timesteps, dtype=jnp.float32)  # [T + 1]
    values = jnp.concatenate([jnp.zeros((1,)), jnp.log(schedule.alpha_bar)])
    return jnp.interp(t, grid, values)
