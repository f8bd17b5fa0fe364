"""DDPM diffusion: schedules, the forward process, losses, the U-Net, samplers.

- `make_schedule`, `linear_schedule`, `cosine_schedule`, `NoiseSchedule`.
- `q_sample`, `to_eps_and_x0`, `posterior_mean`: the forward process.
- `diffusion_loss`: epsilon, x_0 or v prediction.
- `UNet`: the DDPM U-Net with the time conditioning (baseline or remedy).
- `ddpm_sample`, `ddim_sample`, `ode_sample`: samplers on a model function;
  `sample(model, params, schedule, key, n)`: the same on a U-Net.
- `load_checkpoint(workdir)`: a trained model from a training directory.
"""

from timeaware_jax.diffusion.attention import AttentionBlock
from timeaware_jax.diffusion.checkpoint import load_checkpoint, model_from_config
from timeaware_jax.diffusion.forward import (
    PREDICTIONS,
    posterior_mean,
    q_sample,
    to_eps_and_x0,
    v_target,
)
from timeaware_jax.diffusion.losses import (
    analytic_gaussian_eps,
    diffusion_loss,
    regression_target,
)
from timeaware_jax.diffusion.samplers import (
    SAMPLERS,
    SOLVERS,
    ddim_sample,
    ddpm_sample,
    denoise,
    ode_sample,
)
from timeaware_jax.diffusion.sampling import sample
from timeaware_jax.diffusion.schedules import (
    SCHEDULES,
    NoiseSchedule,
    cosine_schedule,
    from_betas,
    linear_schedule,
    log_alpha_bar_continuous,
    make_schedule,
)
from timeaware_jax.diffusion.unet import ResBlock, UNet, count_parameters

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "SCHEDULES",
    "SOLVERS",
    "AttentionBlock",
    "NoiseSchedule",
    "ResBlock",
    "UNet",
    "analytic_gaussian_eps",
    "cosine_schedule",
    "count_parameters",
    "ddim_sample",
    "ddpm_sample",
    "denoise",
    "diffusion_loss",
    "from_betas",
    "linear_schedule",
    "load_checkpoint",
    "log_alpha_bar_continuous",
    "make_schedule",
    "model_from_config",
    "ode_sample",
    "posterior_mean",
    "q_sample",
    "regression_target",
    "sample",
    "to_eps_and_x0",
    "v_target",
]
