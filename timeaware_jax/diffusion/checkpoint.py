"""Rebuild a trained U-Net, its parameters and schedule from a training directory."""

import json
import os

import jax
import ml_collections
from flax import linen as nn

from timeaware_jax.diffusion.schedules import NoiseSchedule, make_schedule
from timeaware_jax.diffusion.unet import UNet

DTYPES = ("float32", "bfloat16")


def model_from_config(config: ml_collections.ConfigDict) -> UNet:
    """The `UNet` described by `config.model` and `config.data`.

    Raises:
        ValueError: for an unknown `config.model.dtype`.

    Example:
        >>> model = model_from_config(get_config())
    """
    m = config.model
    if m.get("dtype", "float32") not in DTYPES:
        raise ValueError(
            f"config.model.dtype must be one of {DTYPES}, got {m.dtype!r}."
        )
    dtype = {"float32": jax.numpy.float32, "bfloat16": jax.numpy.bfloat16}[
        m.get("dtype", "float32")
    ]
    return UNet(
        ch=m.ch,
        ch_mult=tuple(m.ch_mult),
        num_res_blocks=m.num_res_blocks,
        attn_resolutions=tuple(m.attn_resolutions),
        dropout=m.dropout,
        groups=m.groups,
        conditioning=m.conditioning,
        time_bias=m.get("time_bias", 1.0),
        image_size=config.data.image_size,
        channels=config.data.channels,
        dtype=dtype,
    )


def schedule_from_config(config: ml_collections.ConfigDict) -> NoiseSchedule:
    """The noise schedule described by `config.diffusion`."""
    return make_schedule(config.diffusion.schedule, config.diffusion.num_timesteps)


def read_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The config a training run wrote to `workdir/config.json`.

    Raises:
        FileNotFoundError: if the file is missing (not a training directory).
    """
    path = os.path.join(os.fspath(workdir), "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"workdir must be a DDPM training directory holding config.json, got "
            f"{os.fspath(workdir)!r} without it; train with `timeaware train-ddpm`."
        )
    with open(path, encoding="utf-8") as file:
        return ml_collections.ConfigDict(json.load(file))


def load_checkpoint(
    workdir: str | os.PathLike, step: int | None = None
) -> tuple[nn.Module, dict, NoiseSchedule, ml_collections.ConfigDict]:
    """Load a trained DDPM: `(model, params, schedule, config)`.

    `params` are the EMA parameters when the run kept an EMA, else the raw ones.

    Args:
        workdir: the directory `train_and_evaluate` wrote.
        step: the checkpoint to load; the latest by default.

    Returns:
        The `UNet`, its `params` collection, the `NoiseSchedule` and the config.

    Raises:
        FileNotFoundError: without config.json or without a checkpoint.

    Example:
        >>> model, params, schedule, config = load_checkpoint("runs/ddpm_digits")
        >>> images = sample(model, params, schedule, jr.key(0), 16)
    """
    # Imported here: training builds on this package, not the other way round.
    from timeaware_jax.train import Checkpointer
    from timeaware_jax.train.ddpm import abstract_train_state

    config = read_config(workdir)
    template = abstract_train_state(config)
    with Checkpointer(os.path.join(os.fspath(workdir), "checkpoints")) as ckpt:
        state = ckpt.restore(template, step=step)
    return (
        model_from_config(config),
        state.eval_params,
        schedule_from_config(config),
        config,
    )
