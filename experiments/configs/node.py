"""ODE-Net classification: data set x norm x remedy, one config file for the grid.

`get_config("DATASET,NORM,REMEDY[,quick]")` (every part optional, in any order):

- DATASET: `digits` (default, embedded 8x8, no download), `fashion_mnist`
  (local IDX files, Debian package `dataset-fashion-mnist`), `mnist`,
  `cifar10`, `cifar100` (TFDS).
- NORM: `group32` (default, torchdiffeq's GroupNorm(32)), `group<N>` for
  fewer groups (remedy R3: `group8`, `group4`, `group1`), `batch`, `layer`,
  `instance`.
- REMEDY: `baseline` (default: constant time channel), `positional` (R1),
  `bias_init` (R2), `scale_shift` or `add_after_norm` (R4).
- `quick`: a CPU-sized run (subsets, few epochs, 32 channels in 16 groups,
  which keeps torchdiffeq's 2 channels per group under `group32`).

Commands:

    timeaware train-node \
        --config experiments/configs/node.py:digits,group32,baseline,quick \
        --workdir runs/node_digits_baseline_quick
    timeaware train-node \
        --config experiments/configs/node.py:digits,group32,positional,quick \
        --workdir runs/node_digits_positional_quick
    timeaware eval-node --workdir runs/node_digits_baseline_quick
    timeaware train-node \
        --config experiments/configs/node.py:cifar10,group32,positional \
        --workdir runs/node_cifar10_positional --set seed=1
    python experiments/summarize_node.py runs/node_cifar10_*

Hardware, time and result:

- `quick` on digits (6 epochs of the 1,437 training images, batch 64): about
  2 minutes on 2 idle CPU cores (5-7 on busy ones). Measured over seeds 0
  and 1 (test accuracy, forward NFE at test time, time-variance ratio after
  norm2 / norm3): baseline 0.811 +- 0.051, 28, 0.0038 / 0.0055; positional
  0.726 +- 0.147, 25, 0.0036 / 0.0038; scale_shift 0.824 +- 0.041, 28,
  0.027 / 0.033. Chance is 0.1; two seeds do not separate the accuracies.
- `quick` on fashion_mnist (2 epochs of 4,096 images, 1,000 test images):
  about 80 s on 2 idle cores; seed 0: baseline 0.631, scale_shift 0.588.
- full MNIST / CIFAR-10 / CIFAR-100 (torchdiffeq's recipe: 160 epochs, batch
  128, SGD 0.1 with decays at 60, 100, 140): a GPU or TPU, hours; MNIST
  ODE-Nets reach about 99.5% test accuracy in torchdiffeq's report.
"""

import ml_collections

DATASETS = {
    # name: (image shape, classes, stem, crop padding, flips)
    "digits": ((8, 8, 1), 10, "none", 1, False),
    "fashion_mnist": ((28, 28, 1), 10, "conv", 4, False),
    "mnist": ((28, 28, 1), 10, "conv", 4, False),
    "cifar10": ((32, 32, 3), 10, "conv", 4, True),
    "cifar100": ((32, 32, 3), 100, "conv", 4, True),
}
REMEDIES = {
    "baseline": "additive",
    "positional": "positional",
    "bias_init": "bias_init",
    "scale_shift": "scale_shift",
    "add_after_norm": "add_after_norm",
}
PLAIN_NORMS = ("batch", "layer", "instance")


def base_config() -> ml_collections.ConfigDict:
    """torchdiffeq's MNIST ODE-Net recipe on the embedded digits."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.num_epochs = 160
    config.log_every = 50
    config.eval_batch_size = 500

    config.data = ml_collections.ConfigDict()
    config.data.name = "digits"
    config.data.data_dir = None
    config.data.image_shape = (8, 8, 1)
    config.data.crop_padding = 1
    config.data.random_flip = False
    config.data.train_subset = 0  # 0: the whole split
    config.data.test_subset = 0

    config.model = ml_collections.ConfigDict()
    config.model.num_classes = 10
    config.model.stem = "none"
    config.model.features = 64
    config.model.norm = "group"
    config.model.groups = 32
    config.model.conditioning = "additive"
    config.model.time_bias = 1.0
    config.model.embed_scale = 10.0
    config.model.solver = "dopri5"
    config.model.rtol = 1e-3
    config.model.atol = 1e-3
    config.model.dt0 = None
    config.model.adjoint = "recursive"
    config.model.max_steps = 1000
    config.model.count_backward = True

    config.optim = ml_collections.ConfigDict()
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.1  # times batch_size / 128 for SGD
    config.optim.momentum = 0.9
    config.optim.batch_size = 128
    config.optim.decay_epochs = (60, 100, 140)
    config.optim.decay_factor = 0.1

    # Time-variance ratio of the vector field on test inputs, every epoch.
    config.probe = ml_collections.ConfigDict()
    config.probe.num_inputs = 64
    config.probe.num_times = 9
    return config


def _parse(arg: str | None) -> tuple[str, str, int, str, bool]:
    dataset, norm, groups, remedy, quick = "digits", "group", 32, "baseline", False
    for token in filter(None, (arg or "").replace(" ", "").split(",")):
        if token in DATASETS:
            dataset = token
        elif token in REMEDIES:
            remedy = token
        elif token in PLAIN_NORMS:
            norm = token
        elif token.startswith("group") and token[5:].isdigit():
            norm, groups = "group", int(token[5:])
        elif token == "quick":
            quick = True
        else:
            raise ValueError(
                f"unknown config part {token!r} in {arg!r}; expected data sets "
                f"{tuple(DATASETS)}, norms {PLAIN_NORMS} or group<N>, remedies "
                f"{tuple(REMEDIES)}, or 'quick'."
            )
    return dataset, norm, groups, remedy, quick


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config named by `arg`, e.g. `"fashion_mnist,group8,positional,quick"`."""
    dataset, norm, groups, remedy, quick = _parse(arg)
    config = base_config()
    shape, classes, stem, padding, flip = DATASETS[dataset]
    config.data.name = dataset
    config.data.image_shape = shape
    config.data.crop_padding = padding
    config.data.random_flip = flip
    config.model.num_classes = classes
    config.model.stem = stem
    config.model.norm = norm
    config.model.groups = groups
    config.model.conditioning = REMEDIES[remedy]
    if quick:
        _make_quick(config)
    return config


def _make_quick(config: ml_collections.ConfigDict) -> None:
    """Shrink every size so that a run takes minutes on a laptop CPU."""
    config.model.features = 32
    if config.model.norm == "group":
        # Halve the groups with the channels: channels per group stay the same.
        config.model.groups = max(1, config.model.groups // 2)
    config.optim.batch_size = 64
    config.log_every = 10
    config.probe.num_inputs = 32
    if config.data.name == "digits":
        config.num_epochs = 6
        config.optim.decay_epochs = (4,)
    else:
        config.num_epochs = 2
        config.optim.decay_epochs = ()
        config.data.train_subset = 4096
        config.data.test_subset = 1000
