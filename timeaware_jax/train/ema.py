"""Exponential moving average of parameters."""

from typing import Any

import jax

PyTree = Any


def validate_decay(ema_decay: float) -> float:
    """Check that an EMA decay lies in [0, 1) and return it as a float.

    Args:
        ema_decay: the decay rate of the moving average.

    Returns:
        ``float(ema_decay)``.

    Raises:
        ValueError: if the value is not a number in ``[0, 1)``.

    Example:
        >>> validate_decay(0.999)
        0.999
    """
    try:
        decay = float(ema_decay)
    except (TypeError, ValueError):
        raise ValueError(
            f"ema_decay must be a float in [0, 1), got {ema_decay!r}"
        ) from None
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema_decay must be a float in [0, 1), got {ema_decay!r}")
    return decay


def ema_update(ema_params: PyTree, params: PyTree, decay: float) -> PyTree:
    """One step of an exponential moving average of a parameter pytree.

    The update, leaf by leaf, is::

        ema_new = decay * ema + (1 - decay) * params

    so that after ``n`` updates towards constant ``params`` the average is
    ``params + decay**n * (ema_0 - params)``. Each leaf keeps the dtype of
    ``ema_params``. The function is pure and can be called inside ``jax.jit``.

    Args:
        ema_params: the running average, a pytree of arrays.
        params: the current parameters, a pytree with the same structure and
            leaf shapes as ``ema_params``.
        decay: the decay rate in ``[0, 1]`` (a float or a scalar array, so that
            a schedule can be traced).

    Returns:
        The updated average, with the structure of ``ema_params``.

    Example:
        >>> import jax.numpy as jnp
        >>> ema_update({"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, 0.9)["w"]
        Array([0.1, 0.1], dtype=float32)
    """

    def update(ema, p):
        return (decay * ema + (1.0 - decay) * p).astype(ema.dtype)

    return jax.tree.map(update, ema_params, params)
