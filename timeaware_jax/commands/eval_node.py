"""`timeaware eval-node`: evaluate a trained ODE-Net checkpoint.

    timeaware eval-node --workdir runs/node_digits_baseline [--split test]

Prints one JSON line: accuracy, mean loss and mean forward NFE on the split,
and the time-variance ratio before and after each norm of the vector field.
"""

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command-line arguments."""
    parser.add_argument("--workdir", required=True, help="a train-node workdir")
    parser.add_argument(
        "--split", default="test", choices=("train", "test"), help="data split"
    )
    parser.add_argument(
        "--batch-size", type=int, default=500, help="evaluation batch size"
    )


def run(args: argparse.Namespace) -> int:
    """Load the latest checkpoint, evaluate it, print the metrics as JSON."""
    from timeaware_jax.node import load_checkpoint
    from timeaware_jax.train.node import evaluate, load_data, time_variance

    model, variables, config = load_checkpoint(args.workdir)
    images, labels = load_data(config, args.split)
    metrics = evaluate(model, variables, (images, labels), args.batch_size)
    num_inputs = int(config.probe.num_inputs) if "probe" in config else 64
    num_times = int(config.probe.num_times) if "probe" in config else 9
    metrics.update(time_variance(model, variables, images[:num_inputs], num_times))
    print(json.dumps({"split": args.split, **metrics}))
    return 0
