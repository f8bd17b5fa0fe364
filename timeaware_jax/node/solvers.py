"""ODE solvers for the ODE block, and how many vector-field evaluations each costs.

The ODE block names its solver by a string. Four of them are diffrax's own
(`Dopri5`, `Tsit5`, `Heun`, `Euler`); the classical fourth-order Runge--Kutta
method is not shipped by diffrax, so `RK4` below defines it from its Butcher
tableau.

Diffrax reports the number of steps a solve took (accepted plus rejected) in
`sol.stats["num_steps"]`, not the number of vector-field evaluations. For an
explicit Runge--Kutta method with `s` stages the evaluations are

    NFE = s * num_steps                                      (no FSAL)
    NFE = 1 + (s - 1) * num_steps                            (FSAL: the last
          stage of a step is the first of the next, also after a rejection)

Dopri5 and Tsit5 are FSAL with 7 stages, so a Dopri5 solve costs
`1 + 6 * num_steps`. No evaluation is spent on choosing the first step: with
`dt0=None`, diffrax 0.7's `PIDController` sees the wrapped term inside
`diffeqsolve` and starts from a step of 0.01 without probing the vector field
(torchdiffeq spends two evaluations there). The tests check these formulas
against a host-side count of the evaluations.
"""

from typing import ClassVar

import diffrax
import equinox.internal as eqxi
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

SOLVERS = ("dopri5", "tsit5", "heun", "euler", "rk4")
ADAPTIVE_SOLVERS = ("dopri5", "tsit5", "heun")

_rk4_tableau = diffrax.ButcherTableau(
    a_lower=(
        np.array([0.5]),
        np.array([0.0, 0.5]),
        np.array([0.0, 0.0, 1.0]),
    ),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    # No embedded method: the error estimate is identically zero, so RK4 is
    # only ever used with a constant step size (`make_solver` enforces it).
    b_error=np.zeros(4),
    c=np.array([0.5, 0.5, 1.0]),
)


class RK4(diffrax.AbstractERK):
    """The classical fourth-order Runge--Kutta method (fixed step only).

    Stages `k1 = f(t, y)`, `k2 = f(t + h/2, y + h k1 / 2)`,
    `k3 = f(t + h/2, y + h k2 / 2)`, `k4 = f(t + h, y + h k3)` and
    `y1 = y + h (k1 + 2 k2 + 2 k3 + k4) / 6`: four evaluations per step, the
    scheme of torchdiffeq's `method="rk4"`.

    Warning:
        It has no embedded error estimate (the error coefficients are zero), so
        it must run with `diffrax.ConstantStepSize`; with an adaptive
        controller every step would be accepted at the maximal size.

    Example:
        >>> import diffrax, jax.numpy as jnp
        >>> term = diffrax.ODETerm(lambda t, y, args: -y)
        >>> sol = diffrax.diffeqsolve(term, RK4(), 0.0, 1.0, 0.1, jnp.array(1.0))
    """

    tableau: ClassVar[diffrax.ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 4


eqxi.doc_remove_args("scan_kind")(RK4.__init__)

# Name -> (solver class, number of stages, first-same-as-last).
_SOLVER_TABLE = {
    "dopri5": (diffrax.Dopri5, 7, True),
    "tsit5": (diffrax.Tsit5, 7, True),
    "heun": (diffrax.Heun, 2, False),
    "euler": (diffrax.Euler, 1, False),
    "rk4": (RK4, 4, False),
}


def make_solver(name: str, *, adaptive: bool) -> diffrax.AbstractSolver:
    """The diffrax solver called `name`.

    Args:
        name: one of `SOLVERS`.
        adaptive: whether it will run under a `PIDController`.

    Returns:
        A diffrax solver instance.

    Raises:
        ValueError: for an unknown name, or an adaptive run of a solver without
            an error estimate ("euler", "rk4").

    Example:
        >>> make_solver("dopri5", adaptive=True)
        Dopri5()
    """
    if name not in _SOLVER_TABLE:
        raise ValueError(f"solver={name!r} is not one of {SOLVERS}.")
    if adaptive and name not in ADAPTIVE_SOLVERS:
        raise ValueError(
            f"solver={name!r} has no error estimate and needs a fixed step: pass "
            f"dt0 (e.g. 0.1) or choose an adaptive solver from {ADAPTIVE_SOLVERS}."
        )
    return _SOLVER_TABLE[name][0]()


def count_evaluations(name: str, num_steps: Int[Array, ""]) -> Int[Array, ""]:
    """Vector-field evaluations of one diffrax solve, from its step count.

    `NFE = s * n` without FSAL, `1 + (s - 1) * n` with FSAL (`s` stages, `n`
    steps including rejected ones).

    Args:
        name: one of `SOLVERS`.
        num_steps: `sol.stats["num_steps"]`, accepted plus rejected steps.

    Returns:
        The number of evaluations, an integer scalar.

    Raises:
        ValueError: for an unknown solver name.

    Example:
        >>> int(count_evaluations("dopri5", jnp.array(4)))
        25
    """
    if name not in _SOLVER_TABLE:
        raise ValueError(f"solver={name!r} is not one of {SOLVERS}.")
    _, stages, fsal = _SOLVER_TABLE[name]
    num_steps = jnp.asarray(num_steps)
    return 1 + (stages - 1) * num_steps if fsal else stages * num_steps
