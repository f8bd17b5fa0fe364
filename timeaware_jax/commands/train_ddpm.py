"""`timeaware train-ddpm`: train a DDPM U-Net from a config file.

    timeaware train-ddpm --config experiments/configs/ddpm_digits.py:scale_shift \
        --workdir runs/ddpm_digits_scale_shift [--set optim.batch_size=64]

The text after ':' is passed to the config's `get_config(arg)`. Metrics go to
`WORKDIR/metrics.jsonl` and are echoed as JSON lines on stdout at the end; a
progress bar shows on stderr. An existing checkpoint in WORKDIR is resumed.
"""

import argparse
import ast
import importlib.util
import json
import os
import sys

import ml_collections


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Load `path.py[:arg]` by calling the file's `get_config(arg)`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it has no `get_config`.
    """
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"--config must name a Python config file, got {path!r}."
        )
    module_spec = importlib.util.spec_from_file_location("timeaware_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path!r} must define get_config(), it does not.")
    return module.get_config(arg or None) if arg else module.get_config()


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
    """Apply `dotted.key=value` overrides (values parsed as Python literals)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}.")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command-line arguments."""
    parser.add_argument(
        "--config", required=True, help="config file, path.py[:variant]"
    )
    parser.add_argument("--workdir", required=True, help="output and resume directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set num_train_steps=100",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the bar")


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
