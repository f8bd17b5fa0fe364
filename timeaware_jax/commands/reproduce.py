"""`timeaware reproduce`: run the reproduction study's grid, then report it.

    timeaware reproduce --out experiments/results            # run (resumes)
    timeaware reproduce --out experiments/results --list     # what would run
    timeaware reproduce --out experiments/results --report docs/results
    timeaware reproduce --page docs/results.md               # refresh its tables

Runs the neural-ODE grid (digits and Fashion-MNIST, GroupNorm and BatchNorm,
baseline and every remedy) and the digits DDPM grid, seeds outermost. Each
run lands in `OUT/STUDY/CELL/seedN/`; finished runs are skipped, interrupted
ones resume from their checkpoint. One JSON line per finished run is
appended to `OUT/results.jsonl`. `--report DIR` writes the tables
(`tables.md`) and plots of whatever has finished; `--page PAGE` recomputes
the tables marked in a hand-written page (`timeaware_jax.study.page`).
`--set KEY=VALUE` gives every run one more config value (a longer budget);
such a variant of the grid belongs in its own `--out`.
"""

import argparse
import json
import os
import sys

from timeaware_jax.commands.config_file import parse_override
from timeaware_jax.study.cells import REMEDIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command-line arguments."""
    parser.add_argument("--out", default="experiments/results", help="output root")
    parser.add_argument(
        "--study",
        nargs="+",
        default=["node", "ddpm"],
        choices=["node", "ddpm"],
        help="which grids to run",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--scale",
        default="cpu",
        choices=["cpu", "paper"],
        help="cpu: digits and Fashion-MNIST, minutes per run; paper: CIFAR, "
        "an accelerator",
    )
    parser.add_argument(
        "--datasets", nargs="+", default=None, help="restrict to these data sets"
    )
    parser.add_argument(
        "--norms", nargs="+", default=None, help="restrict to these norms: group, batch"
    )
    parser.add_argument(
        "--remedies",
        nargs="+",
        default=None,
        help="restrict to these remedies: " + ", ".join(REMEDIES),
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config value every run sets on top of the study's, e.g. "
        "--set num_epochs=24 (use its own --out)",
    )
    parser.add_argument(
        "--configs", default="experiments/configs", help="directory of config files"
    )
    parser.add_argument(
        "--list", action="store_true", help="print the pending runs' commands and stop"
    )
    parser.add_argument(
        "--report", metavar="DIR", default=None, help="write tables and plots to DIR"
    )
    parser.add_argument(
        "--page",
        metavar="PAGE",
        default=None,
        help="recompute the marked tables of a results page (docs/results.md) "
        "from the logs they name, and stop",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the bar")


def run(args: argparse.Namespace) -> int:
    from timeaware_jax.study import grid as study_grid

    try:
        extra = dict(parse_override(item) for item in args.set)
        runs = study_grid.grid(
            args.study,
            args.seeds,
            args.datasets,
            args.norms,
            args.remedies,
            args.scale,
            extra,
        )
        if extra and runs:
            study_grid.load_run_config(runs[0], args.configs)  # checks the keys
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.page is not None:
        from timeaware_jax.study.page import update_page

        try:
            changed = update_page(args.page)
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{'updated' if changed else 'unchanged'}: {args.page}")
        return 0
    if args.report is not None:
        from timeaware_jax.study.report import write_report

        try:
            paths = write_report(args.out, args.report)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print("wrote " + ", ".join(map(str, paths)))
        return 0

    todo = study_grid.pending(runs, args.out)
    if args.list:
        for item in todo:
            print(item.command(args.configs, args.out))
        print(f"# {len(todo)} of {len(runs)} runs pending", file=sys.stderr)
        return 0
    return _run_all(todo, len(runs), args)


def _run_all(todo, total: int, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from timeaware_jax.node import ODESolveError
    from timeaware_jax.study import grid as study_grid
    from timeaware_jax.train import NonFiniteError

    os.makedirs(args.out, exist_ok=True)
    bar = tqdm(
        total=total,
        initial=total - len(todo),
        desc="reproduce",
        unit="run",
        disable=args.no_progress,
    )
    failures = 0
    with open(os.path.join(args.out, "results.jsonl"), "a", encoding="utf-8") as log:
        for item in todo:

            def stage(name: str, item=item) -> None:
                bar.set_postfix_str(f"{item.name}: {name}")

            try:
                result = study_grid.execute(
                    item, args.out, configs_dir=args.configs, progress=stage
                )
            except (NonFiniteError, ODESolveError) as error:
                # A diverged run is a result of the study: keep it and go on.
                failures += 1
                result = study_grid.record_failure(item, args.out, error)
            log.write(json.dumps(_summary_line(result)) + "\n")
            log.flush()
            bar.update(1)
    bar.close()
    print(f"{len(todo)} runs finished, {failures} failed; results in {args.out}")
    return 0


def _summary_line(result: dict) -> dict:
    """The scalar part of a result (per-step and per-block lists dropped)."""
    return {k: v for k, v in result.items() if not isinstance(v, (dict, list))} | {
        "run": result["run"]
    }
