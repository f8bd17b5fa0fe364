"""`timeaware train-node`: train an ODE-Net classifier from a config file.

    timeaware train-node \
        --config experiments/configs/node.py:digits,group32,baseline,quick \
        --workdir runs/node_digits_baseline [--set seed=1]

The text after ':' is passed to the config's `get_config(arg)`. Metrics go to
`WORKDIR/metrics.jsonl` and the last training and evaluation lines are echoed
as JSON on stdout at the end; a progress bar shows on stderr. An existing
checkpoint in WORKDIR is resumed.
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
        parser,
        "experiments/configs/node.py:digits,group32,positional,quick",
        "num_epochs=3",
    )


def run(args: argparse.Namespace) -> int:
    """Train, then print the last training and evaluation metrics as JSON."""
    from timeaware_jax.node import ODESolveError
    from timeaware_jax.train import NonFiniteError, read_metrics
    from timeaware_jax.train.node import train_and_evaluate

    config = load_config(args.config)
    apply_overrides(config, args.set)
    try:
        train_and_evaluate(config, args.workdir, progress=not args.no_progress)
    except (NonFiniteError, ODESolveError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    records = read_metrics(os.path.join(args.workdir, "metrics.jsonl"))
    for key in ("loss", "eval_accuracy"):
        matching = [r for r in records if key in r]
        if matching:
            print(json.dumps(matching[-1]))
    return 0
