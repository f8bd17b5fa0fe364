"""Samplers for trained diffusion models: ancestral DDPM, DDIM, probability-flow ODE.

Each takes a model function `model_fn(x_t, t) -> prediction` and is compiled
with `jax.jit` (the time loop is a `lax.scan` or a diffrax solve).
"""

from timeaware_jax.diffusion.samplers.ancestral import VARIANCES, ddpm_sample
from timeaware_jax.diffusion.samplers.base import SAMPLERS, ModelFn, denoise
from timeaware_jax.diffusion.samplers.ddim import ddim_sample, ddim_timesteps
from timeaware_jax.diffusion.samplers.probability_flow import (
    SOLVERS,
    evaluations_per_step,
    make_solver,
    ode_sample,
    vp_drift,
)

__all__ = [
    "SAMPLERS",
    "SOLVERS",
    "VARIANCES",
    "ModelFn",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "denoise",
    "evaluations_per_step",
    "make_solver",
    "ode_sample",
    "vp_drift",
]
