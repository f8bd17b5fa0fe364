"""Subcommands of the `timeaware` command, one module each."""
