"""Sampling by the probability-flow ODE of the variance-preserving SDE, on diffrax.

The discrete schedule becomes continuous through `s = (t + 1) / T` in (0, 1]
(timestep index t) and the piecewise-linear `log alpha_bar(s)` of
`log_alpha_bar_continuous`, with `beta(s) = -d log alpha_bar / ds`. The VP SDE
with this beta has the marginals q(x_t | x_0) of the schedule, and its
probability-flow ODE (Song et al. 2021, eq. 13) is

    dx/ds = -1/2 beta(s) (x - eps_hat(x, s) / sqrt(1 - alpha_bar(s))).

It is integrated backwards from `s = 1` (x ~ N(0, I)) to `s = 1 / T`
(timestep 0), followed by one denoising step `x0_hat = (x - sqrt(1 - a) eps_hat)
/ sqrt(a)`. The model sees the real-valued timestep index `t = s T - 1`.
"""

import functools

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from timeaware_jax.diffusion.samplers.base import ModelFn, denoise
from timeaware_jax.diffusion.schedules import NoiseSchedule, log_alpha_bar_continuous

SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}


def make_solver(solver: "str | diffrax.AbstractSolver") -> diffrax.AbstractSolver:
    """A diffrax solver from a name in `SOLVERS`, or the solver itself.

    Raises:
        ValueError: for an unknown name.
    """
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {tuple(SOLVERS)}, got {solver!r}.")
    return SOLVERS[solver]()


def evaluations_per_step(solver: diffrax.AbstractSolver) -> tuple[int, int]:
    """(evaluations per step, evaluations at the start) of an explicit solver.

    Runge-Kutta methods with the first-same-as-last property reuse one stage.
    """
    tableau = getattr(solver, "tableau", None)
    if tableau is None:
        return 1, 0
    if tableau.fsal:
        return tableau.num_stages - 1, 1
    return tableau.num_stages, 0


def vp_drift(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    prediction: str,
    s: Float[Array, ""],
    x: Float[Array, "batch ..."],
) -> Float[Array, "batch ..."]:
    """The probability-flow vector field `dx/ds` at continuous time `s` in (0, 1]."""
    num_timesteps = schedule.num_timesteps
    t = s * num_timesteps - 1.0
    log_a = log_alpha_bar_continuous(schedule, t)
    beta = -jax.grad(log_alpha_bar_continuous, argnums=1)(schedule, t) * num_timesteps
    t_batch = jnp.full((x.shape[0],), t)
    eps_hat, _ = denoise(model_fn, schedule, x, t_batch, prediction=prediction)
    return -0.5 * beta * (x - eps_hat / jnp.sqrt(-jnp.expm1(log_a)))


@functools.partial(
    jax.jit,
    static_argnames=(
        "model_fn",
        "shape",
        "solver",
        "num_steps",
        "prediction",
        "clip_denoised",
        "max_steps",
    ),
)
def ode_sample(
    model_fn: ModelFn,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    *,
    solver: "str | diffrax.AbstractSolver" = "tsit5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    dt0: float = 0.01,
    num_steps: int | None = None,
    prediction: str = "eps",
    clip_denoised: bool = True,
    max_steps: int = 4096,
) -> tuple[Float[Array, "batch ..."], Int[Array, ""]]:
    """Draw samples by integrating the probability-flow ODE with diffrax.

    Args:
        model_fn: `(x_t [B, ...], t real [B]) -> prediction`; hashable (static).
        schedule: the noise schedule the model was trained with.
        key: PRNG key for x at s = 1.
        shape: output shape [B, ...].
        solver: a name in `SOLVERS` or a diffrax solver.
        rtol, atol: tolerances of the PID step-size controller (adaptive mode).
        dt0: the magnitude of the first step in s (the solve runs backwards).
        num_steps: if given, take this many equal steps instead of adapting.
        prediction: what `model_fn` predicts: "eps", "x0" or "v".
        clip_denoised: clip the final x0_hat to [-1, 1] (images).
        max_steps: diffrax's step limit.

    Returns:
        (x_0, nfe): samples of the given shape, and the number of network
        evaluations, counted from the solver's steps (accepted and rejected)
        plus the final denoising step.

    Raises:
        ValueError: for an unknown solver or prediction.

    Example:
        >>> x, nfe = ode_sample(eps_fn, linear_schedule(1000), jr.key(0), (8, 2))
    """
    solver = make_solver(solver)
    x_1 = jr.normal(key, shape)
    s0, s1 = 1.0, 1.0 / schedule.num_timesteps

    def vector_field(s: Array, y: Array, args: None) -> Array:
        return vp_drift(model_fn, schedule, prediction, s, y)

    if num_steps is None:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        step = -dt0
    else:
        controller = diffrax.ConstantStepSize()
        step = (s1 - s0) / num_steps
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(vector_field),
        solver,
        t0=s0,
        t1=s1,
        dt0=step,
        y0=x_1,
        stepsize_controller=controller,
        max_steps=max_steps,
    )
    x_end = solution.ys[-1]

    t_end = jnp.zeros((shape[0],))
    _, x_0 = denoise(
        model_fn,
        schedule,
        x_end,
        t_end,
        prediction=prediction,
        clip_denoised=clip_denoised,
    )
    per_step, at_start = evaluations_per_step(solver)
    nfe = solution.stats["num_steps"] * per_step + at_start + 1
    return x_0, nfe
