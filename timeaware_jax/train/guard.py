"""Stop training the moment a metric stops being finite."""

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np


class NonFiniteError(RuntimeError):
    """A training metric became NaN or infinite.

    Attributes:
        step: the step at which it happened.
        names: the names of the non-finite metrics.
    """

    def __init__(self, message: str, *, step: int, names: tuple[str, ...]):
        super().__init__(message)
        self.step = step
        self.names = names


def check_finite(metrics: Mapping[str, Any], step: int) -> None:
    """Raise :class:`NonFiniteError` if any metric holds a NaN or an infinity.

    Call it on the host after each logging step and before each checkpoint
    save, so that only finite states are ever saved and the latest checkpoint
    is the last good one. Values are fetched with ``np.asarray``, so JAX
    arrays are accepted (this waits for the device; in multi-host runs they
    must be fully replicated, as a mean over the global batch is); non-numeric
    values are ignored.

    Args:
        metrics: metric names to scalars or arrays.
        step: the training step, named in the message.

    Raises:
        NonFiniteError: naming every non-finite metric, its value and the step.

    Example:
        >>> check_finite({"loss": 0.3}, step=5)
        >>> try:
        ...     check_finite({"loss": float("nan"), "acc": 0.5}, step=6)
        ... except NonFiniteError as error:
        ...     print(error.names, error.step)
        ('loss',) 6
    """
    bad = {}
    for name, value in metrics.items():
        array = np.asarray(value)
        if not jnp.issubdtype(array.dtype, jnp.inexact):
            continue
        array = array.astype(np.complex128 if array.dtype.kind == "c" else np.float64)
        if not np.all(np.isfinite(array)):
            bad[name] = array.item() if array.ndim == 0 else "non-finite entries"
    if bad:
        listed = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise NonFiniteError(
            f"non-finite metrics at step {step}: {listed}. Training stopped; the "
            "last good checkpoint was kept (no checkpoint is saved from a "
            "non-finite state). Lower the learning rate, enable gradient "
            "clipping, or resume from that checkpoint.",
            step=int(step),
            names=tuple(bad),
        )
