"""`timeaware train-ddpm`: train a DDPM U-Net from a config file.

    timeaware train-ddpm --config experiments/configs/ddpm_digits.py:scale_shift \
        --workdir runs/ddpm_digits_scale_shift [--set optim.batch_size=64]

The text after ':' is passed to the config's `get_config(arg)`. Metrics go to
`WORKDIR/metrics.jsonl` and are echoed as JSON lines on stdout at the end; a
progress bar shows on stderr. An existing checkpoint in WORKDIR is resumed.
"""

import argparse
import json
import os
import sys

from timeaware_jax.commands.config_file import (
    add_training_arguments,
    apply_overrides,
    load_config,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command-line arguments."""
    add_training_arguments(
        parser, "experiments/configs/ddpm_digits.py:scale_shift", "num_train_steps=100"
    )


def run(args: argparse.Namespace) -> int:
    """Train, then print the last metrics line as JSON."""
    from timeaware_jax.train import NonFiniteError, read_metrics
    from timeaware_jax.train.ddpm import train_and_evaluate

    config = load_config(args.config)
    apply_overrides(config, args.set)
    try:
        train_and_evaluate(config, args.workdir, progress=not args.no_progress)
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    records = read_metrics(os.path.join(args.workdir, "metrics.jsonl"))
    train_records = [r for r in records if "loss" in r]
    if train_records:
        print(json.dumps(train_records[-1]))
    eval_records = [r for r in records if "eval_loss" in r]
    if eval_records:
        print(json.dumps(eval_records[-1]))
    return 0
