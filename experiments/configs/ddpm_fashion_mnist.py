"""DDPM on Fashion-MNIST (28x28, from the Debian package dataset-fashion-mnist).

Commands:

    timeaware train-ddpm --config experiments/configs/ddpm_fashion_mnist.py \
        --workdir runs/ddpm_fmnist_baseline
    timeaware train-ddpm --config experiments/configs/ddpm_fashion_mnist.py:positional \
        --workdir runs/ddpm_fmnist_positional

Variants as in `ddpm_cifar10.py`; `quick` is a short smoke run. Three levels
(28, 14, 7; attention at 7x7), 32 base channels in 8 groups.

Hardware and time: 2 CPU cores, 4,000 steps of batch 64, roughly 30-60
minutes (a GPU: a minute). Expected result: recognisable garments (shirts,
trousers, shoes) in `samples/`, training loss near 0.04.
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
    """The Fashion-MNIST config for the variants named in `arg`."""
    cifar10 = _cifar10()
    config = cifar10.base_config()
    config.update(
        {
            "num_train_steps": 4000,
            "log_every": 50,
            "eval_every": 1000,
            "eval_batches": 2,
            "sample_every": 1000,
            "checkpoint_every": 1000,
            "data": {
                "name": "fashion_mnist",
                "image_size": 28,
                "channels": 1,
                "random_flip": True,
            },
            "model": {
                "ch": 32,
                "ch_mult": (1, 2, 2),
                "num_res_blocks": 1,
                "attn_resolutions": (7,),
                "dropout": 0.1,
                "groups": 8,
            },
            "optim": {
                "learning_rate": 5e-4,
                "warmup_steps": 200,
                "ema_decay": 0.999,
                "batch_size": 64,
            },
            "sample": {
                "num_images": 64,
                "sampler": "ddim",
                "num_steps": 100,
                "scale": 2,
            },
        }
    )
    cifar10.apply_variants(config, arg)
    return config
