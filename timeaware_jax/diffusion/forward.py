"""The forward process q(x_t | x_0) and the conversions between parameterisations.

With `a = alpha_bar_t`, a noisy sample and the three prediction targets are

    x_t = sqrt(a) x_0 + sqrt(1 - a) eps,          eps ~ N(0, I)
    v   = sqrt(a) eps - sqrt(1 - a) x_0           (Salimans & Ho 2022)

and any one of `eps`, `x_0`, `v` determines the other two given `x_t`.
Timesteps `t` are integer indices in [0, T) into a `NoiseSchedule`.
"""

from jaxtyping import Array, Float, Int

from timeaware_jax.diffusion.schedules import NoiseSchedule

PREDICTIONS = ("eps", "x0", "v")


def extract(values: Float[Array, " T"], t: Int[Array, " batch"], ndim: int) -> Array:
    """`values[t]` reshaped to broadcast against a [B, ...] tensor of rank `ndim`."""
    out = values[t]
    return out.reshape(out.shape + (1,) * (ndim - 1))  # [B] -> [B, 1, ..., 1]


def q_sample(
    schedule: NoiseSchedule,
    x_0: Float[Array, "batch ..."],
    t: Int[Array, " batch"],
    eps: Float[Array, "batch ..."],
) -> Float[Array, "batch ..."]:
    """Draw x_t from q(x_t | x_0) with the given noise.

        x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps

    Args:
        schedule: the noise schedule.
        x_0: clean data [B, ...].
        t: integer timesteps [B] in [0, T).
        eps: standard normal noise, same shape as `x_0`.

    Returns:
        x_t, same shape as `x_0`.

    Example:
        >>> s = linear_schedule(10)
        >>> q_sample(s, jnp.zeros((2, 3)), jnp.array([0, 9]), jnp.ones((2, 3))).shape
        (2, 3)
    """
    ndim = x_0.ndim
    return (
        extract(schedule.sqrt_alpha_bar, t, ndim) * x_0
        + extract(schedule.sqrt_one_minus_alpha_bar, t, ndim) * eps
    )


def v_target(
    schedule: NoiseSchedule,
    x_0: Float[Array, "batch ..."],
    t: Int[Array, " batch"],
    eps: Float[Array, "batch ..."],
) -> Float[Array, "batch ..."]:
    """The velocity `v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0`."""
    ndim = x_0.ndim
    return (
        extract(schedule.sqrt_alpha_bar, t, ndim) * eps
        - extract(schedule.sqrt_one_minus_alpha_bar, t, ndim) * x_0
    )


def to_eps_and_x0(
    schedule: NoiseSchedule,
    x_t: Float[Array, "batch ..."],
    t: Int[Array, " batch"],
    output: Float[Array, "batch ..."],
    prediction: str = "eps",
) -> tuple[Array, Array]:
    """Convert a network output under `prediction` to the pair (eps_hat, x0_hat).

        eps:  x0_hat = (x_t - sqrt(1 - a) eps_hat) / sqrt(a)
        x0:   eps_hat = (x_t - sqrt(a) x0_hat) / sqrt(1 - a)
        v:    x0_hat = sqrt(a) x_t - sqrt(1 - a) v_hat,
              eps_hat = sqrt(1 - a) x_t + sqrt(a) v_hat

    Args:
        schedule: the noise schedule.
        x_t: noisy input [B, ...].
        t: integer timesteps [B].
        output: the network's prediction, same shape as `x_t`.
        prediction: one of `PREDICTIONS`.

    Returns:
        (eps_hat, x0_hat), each shaped like `x_t`.

    Raises:
        ValueError: for an unknown `prediction`.

    Example:
        >>> s = linear_schedule(10)
        >>> x = jnp.ones((1, 2))
        >>> eps, x0 = to_eps_and_x0(s, x, jnp.array([3]), x, "eps")
    """
    ndim = x_t.ndim
    sqrt_a = extract(schedule.sqrt_alpha_bar, t, ndim)
    sqrt_1ma = extract(schedule.sqrt_one_minus_alpha_bar, t, ndim)
    if prediction == "eps":
        return output, (x_t - sqrt_1ma * output) / sqrt_a
    if prediction == "x0":
        return (x_t - sqrt_a * output) / sqrt_1ma, output
    if prediction == "v":
        return sqrt_1ma * x_t + sqrt_a * output, sqrt_a * x_t - sqrt_1ma * output
    raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}.")


def posterior_mean(
    schedule: NoiseSchedule,
    x_0: Float[Array, "batch ..."],
    x_t: Float[Array, "batch ..."],
    t: Int[Array, " batch"],
) -> Float[Array, "batch ..."]:
    """Mean of q(x_{t-1} | x_t, x_0): `c0_t x_0 + ct_t x_t` (Ho et al. eq. 7)."""
    ndim = x_t.ndim
    return (
        extract(schedule.posterior_mean_coef_x0, t, ndim) * x_0
        + extract(schedule.posterior_mean_coef_xt, t, ndim) * x_t
    )


def check_prediction(prediction: str) -> None:
    """Raise ValueError unless `prediction` is one of `PREDICTIONS`."""
    if prediction not in PREDICTIONS:
        raise ValueError(
            f"prediction must be one of {PREDICTIONS}, got {prediction!r}."
        )
