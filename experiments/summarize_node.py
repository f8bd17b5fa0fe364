"""Turn the JSON logs of ODE-Net runs (several seeds) into a markdown table.

    python experiments/summarize_node.py runs/node_* [--out table.md]

Each argument is a `timeaware train-node` workdir (`config.json` and
`metrics.jsonl`). Runs are grouped by data set, norm, groups and remedy
(seeds pooled); each group reports the mean and standard deviation over its
runs of the final test accuracy, the mean forward NFE at test time, the
training backward NFE of the last logged step, and the time-variance ratio
after `norm2` and `norm3` of the vector field (and before `norm2`).
"""

import argparse
import json
import os
import sys

import numpy as np

# column title -> (record kind, metric key)
COLUMNS = {
    "accuracy": ("eval", "eval_accuracy"),
    "NFE (test)": ("eval", "eval_nfe"),
    "NFE bwd (train)": ("train", "nfe_backward"),
    "tv ratio in norm2": ("eval", "tv_ratio_in_norm2"),
    "tv ratio norm2": ("eval", "tv_ratio_norm2"),
    "tv ratio norm3": ("eval", "tv_ratio_norm3"),
}
REMEDY_NAMES = {
    "additive": "baseline",
    "positional": "R1 positional",
    "bias_init": "R2 bias init",
    "scale_shift": "R4 scale-shift",
    "add_after_norm": "R4 add after norm",
}


def read_run(workdir: str) -> dict:
    """The group key and final metrics of one run."""
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as file:
        config = json.load(file)
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as file:
        records = [json.loads(line) for line in file if line.strip()]
    last = {
        "eval": next((r for r in reversed(records) if "eval_accuracy" in r), {}),
        "train": next((r for r in reversed(records) if "loss" in r), {}),
    }
    model = config["model"]
    norm = model["norm"]
    if norm == "group":
        norm = f"group{model['groups']}"
    key = (config["data"]["name"], norm, REMEDY_NAMES.get(model["conditioning"]))
    values = {
        title: last[kind].get(name, float("nan"))
        for title, (kind, name) in COLUMNS.items()
    }
    return {"key": key, "seed": config.get("seed"), "values": values}


def summarize(runs: list[dict]) -> str:
    """A markdown table, one row per (data set, norm, remedy), mean +- std."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["key"], []).append(run["values"])
    header = ["data set", "norm", "remedy", "seeds", *COLUMNS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for key in sorted(groups, key=str):
        values = groups[key]
        cells = [*key, str(len(values))]
        for title in COLUMNS:
            column = np.array([v[title] for v in values], dtype=np.float64)
            cells.append(_mean_std(column, title))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def _mean_std(column: np.ndarray, title: str) -> str:
    digits = 4 if title.startswith("tv") else (3 if title == "accuracy" else 1)
    if np.all(np.isnan(column)):
        return "-"
    mean = np.nanmean(column)
    if len(column) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {np.nanstd(column, ddof=1):.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdirs", nargs="+", help="train-node workdirs")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    runs = []
    for workdir in args.workdirs:
        if not os.path.exists(os.path.join(workdir, "metrics.jsonl")):
            print(f"skipping {workdir}: no metrics.jsonl", file=sys.stderr)
            continue
        runs.append(read_run(workdir))
    if not runs:
        print("error: no run with metrics.jsonl among the arguments", file=sys.stderr)
        return 1
    table = summarize(runs)
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as file:
            file.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
