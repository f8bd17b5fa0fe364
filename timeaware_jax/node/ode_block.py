"""The ODE block: `y(t1) = y(t0) + integral of f(t, y(t)) dt` with diffrax.

    dy/dt = f(t, y),   y(t0) = y0,   t in [t0, t1] = [0, 1]

`solve_ode` is the functional core (any `f(t, y, args)`); `ODEBlock` is the
Flax module that integrates an `ODEFunc` whose parameters it owns.

Choices, as in torchdiffeq's ODE-Net unless said otherwise:

- solver: `"dopri5"` (default), `"tsit5"`, `"heun"` with a `PIDController`
  (`rtol`, `atol`, both 1e-3 by default); `"euler"` and `"rk4"` with a constant
  step `dt0`.
- adjoint: `"recursive"` (diffrax's `RecursiveCheckpointAdjoint`:
  backpropagation through the solver, discretise-then-optimise; default) or
  `"backsolve"` (`BacksolveAdjoint`: the continuous adjoint solved backwards
  in time, torchdiffeq's `odeint_adjoint`).
- `max_steps`: the solve runs with `throw=False` and its result is checked
  with `equinox.error_if`, so that running out of steps raises an error whose
  message names `max_steps` and the way out (inside `jit` it surfaces as a
  runtime error carrying that message).
- NFE: the forward count follows from the solver and `sol.stats["num_steps"]`
  (`solvers.count_evaluations`); the backward count of VJPs is available
  through `counting` when `count_backward=True`.
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int, PyTree

from timeaware_jax.node.counting import mark_backward
from timeaware_jax.node.solvers import (
    SOLVERS,
    count_evaluations,
    make_solver,
)
from timeaware_jax.node.vector_field import ODEFunc, check_vector_field_args

ADJOINTS = ("recursive", "backsolve")


def make_adjoint(name: str) -> diffrax.AbstractAdjoint:
    """The diffrax adjoint called `name` (one of `ADJOINTS`).

    Raises:
        ValueError: for an unknown name.

    Example:
        >>> make_adjoint("backsolve")
        BacksolveAdjoint(kwargs={})
    """
    if name == "recursive":
        return diffrax.RecursiveCheckpointAdjoint()
    if name == "backsolve":
        return diffrax.BacksolveAdjoint()
    raise ValueError(f"adjoint={name!r} is not one of {ADJOINTS}.")


def check_solve_args(
    solver: str, dt0: float | None, adjoint: str, max_steps: int, rtol, atol
) -> None:
    """Raise `ValueError` for a solver configuration `solve_ode` cannot run."""
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is not one of {SOLVERS}.")
    make_solver(solver, adaptive=dt0 is None)
    if dt0 is not None and dt0 <= 0:
        raise ValueError(f"dt0 must be positive or None, got {dt0!r}.")
    if adjoint not in ADJOINTS:
        raise ValueError(f"adjoint={adjoint!r} is not one of {ADJOINTS}.")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")
    if dt0 is None and not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got {rtol!r}, {atol!r}.")


def solve_ode(
    f: Callable[[Array, PyTree, PyTree], PyTree],
    y0: PyTree[Float[Array, "..."]],
    args: PyTree = None,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    ts: Float[Array, " times"] | None = None,
    solver: str = "dopri5",
    rtol: float = 1e-3,
    atol: float = 1e-3,
    dt0: float | None = None,
    adjoint: str = "recursive",
    max_steps: int = 1000,
    throw: bool = True,
) -> tuple[PyTree[Float[Array, "times ..."]], Int[Array, ""], Bool[Array, ""]]:
    """Integrate `dy/dt = f(t, y, args)` from `t0` to `t1` with diffrax.

    Args:
        f: the vector field; `t` is a scalar shared by the whole state.
        y0: the initial state, any pytree of arrays.
        args: passed to `f`; put the parameters here (not in a closure) so
            that both adjoints differentiate them.
        t0, t1: the time interval.
        ts: times at which to return the state; `[t1]` when None.
        solver: one of `SOLVERS`.
        rtol, atol: tolerances of the `PIDController` (adaptive solvers).
        dt0: None for adaptive stepping, else the constant step.
        adjoint: one of `ADJOINTS`.
        max_steps: the most steps (accepted plus rejected) before failing.
        throw: raise when the solve fails; with False the failure is only
            returned (training loops check it after the step, see
            `ODESolveError`).

    Returns:
        `(ys, nfe, failed)`: the states at `ts`, each leaf with a leading axis
        of `len(ts)`; the number of vector-field evaluations of the forward
        solve; whether the solve failed (ran out of `max_steps`).

    Raises:
        ValueError: for an invalid configuration (before any tracing).
        equinox's runtime error (with `throw=True`): when the solve needs more
            than `max_steps` steps or fails otherwise; the message says what
            to change (`solve_failure_message`).

    Example:
        >>> ys, nfe, failed = solve_ode(lambda t, y, a: -y, jnp.ones(2))
        >>> bool(jnp.allclose(ys[0], jnp.exp(-1.0), atol=1e-3))
        True
    """
    check_solve_args(solver, dt0, adjoint, max_steps, rtol, atol)
    adaptive = dt0 is None
    controller = (
        diffrax.PIDController(rtol=rtol, atol=atol)
        if adaptive
        else diffrax.ConstantStepSize()
    )
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=ts)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f),
        make_solver(solver, adaptive=adaptive),
        t0,
        t1,
        dt0,
        y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        adjoint=make_adjoint(adjoint),
        max_steps=max_steps,
        throw=False,
    )
    failed = sol.result != diffrax.RESULTS.successful
    ys = sol.ys
    if throw:
        message = solve_failure_message(solver, rtol, atol, max_steps, t1)
        ys = eqx.error_if(ys, failed, message)
    return ys, count_evaluations(solver, sol.stats["num_steps"]), failed


class ODESolveError(RuntimeError):
    """An ODE solve stopped before `t1`, usually because of `max_steps`."""


def solve_failure_message(
    solver: str, rtol: float, atol: float, max_steps: int, t1: float = 1.0
) -> str:
    """The message of a failed solve: what happened and what to change."""
    return (
        f"The ODE solve stopped before t1={t1}: most likely it needed more than "
        f"max_steps={max_steps} steps (solver={solver!r}, rtol={rtol}, "
        f"atol={atol}), or the state stopped being finite. Raise max_steps or "
        f"loosen rtol/atol."
    )


class ODEBlock(nn.Module):
    """Integrate the ODE-Net vector field `ODEFunc` over `t` in [0, 1].

    `__call__(y0, *, train=False)` with `y0` of shape `[B, H, W, features]`
    returns `y(1)` of the same shape and sows the forward NFE and whether the
    solve failed into the `ode_stats` collection (`"nfe"`, `"failed"`). The
    parameters of the vector field live under this module's `vector_field`
    entry (the nested tree of an `ODEFunc`), so
    `block.vector_field().apply({"params": params["vector_field"]}, t, y)`
    evaluates it directly.

    BatchNorm inside the vector field (`norm="batch"`):

    - `train=True`: every evaluation of `f` normalizes with the mean and
      variance of its own batch at its own `(t, y)`, exactly as PyTorch's
      BatchNorm does inside torchdiffeq. Because `t` is shared by the batch,
      this is where BatchNorm removes the constant time channel completely.
    - Running averages are not touched by the solve itself (its evaluations
      include rejected trial steps, and their number varies). Instead they are
      updated once per forward pass, with momentum, from one extra
      training-mode evaluation at the midpoint `(0.5, y(0.5))` of the
      trajectory (dense output, no extra steps); the midpoint is the single
      time that best represents the states the solver visits at test time.
      That evaluation is not part of the reported NFE and carries no gradient.
    - `train=False`: every evaluation uses the running averages.

    Warning:
        `init` creates the parameters without running a solve (that would
        compile the whole solver once more) and returns `y0` unchanged as the
        block's output; `init_with_output` therefore does not integrate.

    **Arguments:** the `ODEFunc` arguments (`features`, `norm`, `groups`,
    `conditioning`, `time_bias`, `embed_scale`) and the `solve_ode` arguments
    (`solver`, `rtol`, `atol`, `dt0`, `adjoint`, `max_steps`, `throw`); with
    `count_backward=True` the backward pass counts its vector-field VJPs
    (`timeaware_jax.node.counting`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> block = ODEBlock(features=8, groups=4)
        >>> y0 = jnp.ones((2, 6, 6, 8))
        >>> variables = block.init(jax.random.key(0), y0)
        >>> y1, state = block.apply(variables, y0, mutable=["ode_stats"])
        >>> y1.shape
        (2, 6, 6, 8)
    """

    features: int = 64
    norm: str = "group"
    groups: int = 32
    conditioning: str = "additive"
    time_bias: float = 1.0
    embed_scale: float = 10.0
    solver: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    dt0: float | None = None
    adjoint: str = "recursive"
    max_steps: int = 1000
    throw: bool = True
    count_backward: bool = False

    def vector_field(self) -> ODEFunc:
        """The unbound `ODEFunc` this block integrates."""
        return ODEFunc(
            features=self.features,
            norm=self.norm,
            groups=self.groups,
            conditioning=self.conditioning,
            time_bias=self.time_bias,
            embed_scale=self.embed_scale,
            parent=None,
        )

    @nn.compact
    def __call__(
        self, y0: Float[Array, "batch height width channels"], *, train: bool = False
    ) -> Float[Array, "batch height width channels"]:
        check_vector_field_args(self.conditioning, self.norm, self.groups)
        check_solve_args(
            self.solver, self.dt0, self.adjoint, self.max_steps, self.rtol, self.atol
        )
        func = self.vector_field()
        t_init = jnp.zeros((), y0.dtype)
        params = self.param(
            "vector_field", lambda key: func.init(key, t_init, y0)["params"]
        )
        batch_norm = self.norm == "batch"
        if batch_norm:
            stats = self.variable(
                "batch_stats",
                "vector_field",
                lambda: func.init(jr.key(0), t_init, y0)["batch_stats"],
            )
        # Running averages are updated only when the caller lets them change.
        update_stats = (
            batch_norm and train and self.is_mutable_collection("batch_stats")
        )
        batch_stats = stats.value if batch_norm else None
        if self.is_initializing():
            return y0  # parameters are all made; skip compiling a solve

        def f(t, y, args):
            params, batch_stats = args
            if self.count_backward:
                y = mark_backward(y)
            variables = {"params": params}
            if batch_stats is not None:
                variables["batch_stats"] = batch_stats
            if batch_norm and train:
                dy, _ = func.apply(variables, t, y, train=True, mutable=["batch_stats"])
                return dy
            return func.apply(variables, t, y, train=False)

        ts = jnp.array([0.5, 1.0]) if update_stats else None
        ys, nfe, failed = solve_ode(
            f,
            y0,
            (params, batch_stats),
            ts=ts,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            dt0=self.dt0,
            adjoint=self.adjoint,
            max_steps=self.max_steps,
            throw=self.throw,
        )
        self.sow("ode_stats", "nfe", nfe, reduce_fn=_keep_last)
        self.sow("ode_stats", "failed", failed, reduce_fn=_keep_last)

        if update_stats and not self.is_initializing():
            y_mid = jax.lax.stop_gradient(ys[0])
            _, updated = func.apply(
                {"params": params, "batch_stats": batch_stats},
                0.5,
                y_mid,
                train=True,
                mutable=["batch_stats"],
            )
            stats.value = jax.lax.stop_gradient(updated["batch_stats"])
        return ys[-1]


def _keep_last(_, new):
    return new
