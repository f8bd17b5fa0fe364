"""Config files for the training commands: `path.py[:arg]` plus `--set` overrides.

A config file defines `get_config(arg)` returning an `ml_collections.ConfigDict`;
`--set dotted.key=value` overrides single values, parsed as Python literals.
"""

import argparse
import ast
import importlib.util
import os

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
        set_value(config, *parse_override(item))


def parse_override(item: str) -> tuple[str, object]:
    """`"optim.batch_size=64"` -> `("optim.batch_size", 64)`.

    The value is parsed as a Python literal where it is one, else kept as text.
    """
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects key=value, got {item!r}.")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    return key, value


def has_key(config: ml_collections.ConfigDict, key: str) -> bool:
    """Whether the dotted `key` names an existing value of `config`."""
    node = config
    for name in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            return False
        node = node[name]
    return True


def set_value(config: ml_collections.ConfigDict, key: str, value) -> None:
    """Set the value at a dotted key such as `optim.batch_size`."""
    *parents, leaf = key.split(".")
    node = config
    for name in parents:
        node = node[name]
    node[leaf] = value


def add_training_arguments(
    parser: argparse.ArgumentParser, config_example: str, set_example: str
) -> None:
    """`--config`, `--workdir`, `--set` and `--no-progress`, shared by trainers."""
    parser.add_argument(
        "--config",
        required=True,
        help=f"config file, path.py[:variant], e.g. {config_example}",
    )
    parser.add_argument("--workdir", required=True, help="output and resume directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {set_example}",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the bar")
