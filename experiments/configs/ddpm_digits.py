"""DDPM on the embedded 8x8 digits: the quick, CPU-only study of the remedies.

Commands (a few minutes each on a laptop CPU):

    timeaware train-ddpm --config experiments/configs/ddpm_digits.py \
        --workdir runs/ddpm_digits_baseline
    timeaware train-ddpm --config experiments/configs/ddpm_digits.py:scale_shift \
        --workdir runs/ddpm_digits_scale_shift
    timeaware sample --workdir runs/ddpm_digits_baseline --num 64 \
        --sampler ddim --out runs/ddpm_digits_baseline/grid.png

Variants as in `ddpm_cifar10.py` (`positional`, `bias_init`, `groups<N>`,
`scale_shift`, `add_after_norm`, `quick`). The U-Net has two levels (8x8 and
4x4, attention at 4x4), 32 base channels in 8 groups: 4 channels per group,
as in DDPM's first level.

Hardware and time: 2 CPU cores, 2,000 steps of batch 64, 5-10 minutes.
Expected result: recognisable digits in `samples/`, training loss near 0.05.
"""

import importlib.util
import os

import ml_collections


def _cifar10():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddpm_cifar10.py")
    spec = importlib.util.spec_from_file_location("ddpm_cifar10_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The digits config for the variants named in `arg` (default: the baseline)."""
    cifar10 = _cifar10()
    config = cifar10.base_config()
    config.update(
        {
            "num_train_steps": 2000,
            "log_every": 50,
            "eval_every": 500,
            "eval_batches": 2,
            "sample_every": 500,
            "checkpoint_every": 500,
            "data": {
                "name": "digits",
                "image_size": 8,
                "channels": 1,
                "random_flip": False,
            },
            "model": {
                "ch": 32,
                "ch_mult": (1, 2),
                "num_res_blocks": 1,
                "attn_resolutions": (4,),
                "dropout": 0.0,
                "groups": 8,
            },
            "optim": {
                "learning_rate": 1e-3,
                "warmup_steps": 100,
                "ema_decay": 0.995,
                "batch_size": 64,
            },
            "sample": {
                "num_images": 64,
                "sampler": "ddim",
                "num_steps": 100,
                "scale": 4,
            },
        }
    )
    cifar10.apply_variants(config, arg)
    return config
