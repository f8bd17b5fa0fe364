"""The `timeaware` command.

Each subcommand lives in its own module under `timeaware_jax.commands` and
exposes two functions: `add_arguments(parser)` and `run(args) -> int`. This file
only dispatches, so that importing the CLI stays cheap and one broken
subcommand cannot hide the others.
"""

import argparse
import importlib
import sys

# Subcommand name -> (module under timeaware_jax.commands, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "diagnose": ("diagnose", "where does the time signal die, and which remedy helps"),
    "train-node": ("train_node", "train a neural-ODE classifier from a config"),
    "eval-node": ("eval_node", "evaluate a trained neural-ODE checkpoint"),
    "train-ddpm": ("train_ddpm", "train a DDPM from a config"),
    "sample": ("sample", "draw samples from a trained DDPM checkpoint"),
    "eval-ddpm": ("eval_ddpm", "sample a DDPM checkpoint and score the samples"),
    "fid": ("fid", "FID and Inception Score of a folder or array of images"),
    "reproduce": ("reproduce", "run the reproduction study's grid and report it"),
}


def _load(module_name: str):
    return importlib.import_module(f"timeaware_jax.commands.{module_name}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per available subcommand."""
    parser = argparse.ArgumentParser(
        prog="timeaware",
        description="Time-dependent networks that stay time-aware.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = _load(module_name)
        except ModuleNotFoundError as error:
            if error.name != f"timeaware_jax.commands.{module_name}":
                raise
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `timeaware` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
