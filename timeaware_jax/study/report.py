"""Tables and plots of the reproduction study, from the runs' own logs.

`write_report(out, report_dir)` reads every finished run under `out` and
writes `tables.md` (markdown, mean +- standard deviation over seeds, and each
remedy's difference from the baseline of its data set and norm) and PNG
figures. A difference *exceeds the seed spread* when it is larger than twice
its standard error, sqrt(s_a^2 / n_a + s_b^2 / n_b); the two-sided Welch
t-test p-value is given beside it.
"""

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from timeaware_jax.study.cells import REMEDIES
from timeaware_jax.study.grid import grid, load_results, set_flags
from timeaware_jax.train.logging import read_metrics

REMEDY_LABELS = {
    "baseline": "baseline",
    "positional": "R1 positional",
    "bias_init": "R2 bias init",
    "fewer_groups": "R3 G=8",
    "fewer_groups4": "R3 G=4",
    "fewer_groups1": "R3 G=1",
    "scale_shift": "R4 scale-shift",
}
SHORT_LABELS = {
    "baseline": "base",
    "positional": "R1",
    "bias_init": "R2",
    "fewer_groups": "R3/8",
    "fewer_groups4": "R3/4",
    "fewer_groups1": "R3/1",
    "scale_shift": "R4",
}
NORM_LABELS = {"group": "GroupNorm", "batch": "BatchNorm"}
DATASET_LABELS = {"digits": "digits (8x8)", "fashion_mnist": "Fashion-MNIST"}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A remedy's difference from the baseline over seeds."""

    difference: float
    standard_error: float
    p_value: float

    @property
    def exceeds_spread(self) -> bool:
        return abs(self.difference) > 2.0 * self.standard_error

    def cell(self, digits: int = 3) -> str:
        verdict = "yes" if self.exceeds_spread else "no"
        p = "p<0.01" if self.p_value < 0.01 else f"p={self.p_value:.2f}"
        return (
            f"{self.difference:+.{digits}f} ± {self.standard_error:.{digits}f} "
            f"({p}, {verdict})"
        )


def compare(values: Sequence[float], baseline: Sequence[float]) -> Comparison:
    """Difference of means, its standard error and Welch's two-sided p-value.

    Needs at least two values on each side.
    """
    from scipy import stats

    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(
            f"compare needs at least 2 values per side, got {len(a)} and {len(b)}."
        )
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    difference = float(a.mean() - b.mean())
    if se == 0.0:
        p = 1.0 if difference == 0.0 else 0.0
    else:
        # Welch's t with the Welch-Satterthwaite degrees of freedom.
        dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        p = float(2.0 * stats.t.sf(abs(difference) / se, dof))
    return Comparison(difference, se, p)


def mean_std(values: Sequence[float], fmt: str = ".3f") -> str:
    """`mean ± std` over seeds (sample standard deviation); `–` if empty."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return "–"
    if v.size == 1:
        return format(v[0], fmt)
    return f"{format(v.mean(), fmt)} ± {format(v.std(ddof=1), fmt)}"


# ---------------------------------------------------------------- grouping


def _groups(results: list[dict], study: str) -> dict[tuple, list[dict]]:
    """`{(dataset, norm, remedy): [results of its seeds]}`, finished runs only."""
    groups: dict[tuple, list[dict]] = {}
    for result in results:
        run = result["run"]
        if run["study"] != study or "failed" in result:
            continue
        key = (run["dataset"], run["norm"], run["remedy"])
        groups.setdefault(key, []).append(result)
    return groups


def _failures(results: list[dict], study: str) -> list[str]:
    return [
        f"{r['run']['dataset']} {r['run']['norm']} {r['run']['remedy']} "
        f"seed {r['run']['seed']}: {r['failed']}"
        for r in results
        if r["run"]["study"] == study and "failed" in r
    ]


def _ordered(groups: dict[tuple, list[dict]]) -> list[tuple]:
    order = {name: i for i, name in enumerate(REMEDIES)}
    return sorted(groups, key=lambda k: (k[0], k[1] != "group", order[k[2]]))


# ---------------------------------------------------------------- tables


NODE_COLUMNS = {
    # title -> (result key, format)
    "NFE fwd (test)": ("eval_nfe", ".1f"),
    "NFE fwd (train)": ("nfe_forward_train", ".1f"),
    "NFE bwd (train)": ("nfe_backward_train", ".1f"),
    "tv in norm2": ("tv_ratio_in_norm2", ".4f"),
    "tv after norm2": ("tv_ratio_norm2", ".4f"),
    "tv in norm3": ("tv_ratio_in_norm3", ".4f"),
    "tv after norm3": ("tv_ratio_norm3", ".4f"),
}


def node_tables(results: list[dict]) -> str:
    """Accuracy with comparisons, then NFE and time-variance ratios."""
    parts = [node_accuracy_table(results), node_metrics_table(results)]
    return "\n\n".join(parts + _failure_list(results, "node"))


def node_accuracy_table(results: list[dict]) -> str:
    """Test accuracy per cell, its difference from the baseline, test loss."""
    groups = _groups(results, "node")
    lines = [
        "| data set | norm | remedy | seeds | test accuracy | vs baseline "
        "(diff ± s.e., p, exceeds spread?) | test loss | wall time per run (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in _ordered(groups):
        dataset, norm, remedy = key
        runs = groups[key]
        accuracy = [r["eval_accuracy"] for r in runs]
        base = groups.get((dataset, norm, "baseline"), [])
        versus = "–"
        if remedy != "baseline" and len(base) >= 2 and len(runs) >= 2:
            versus = compare(accuracy, [r["eval_accuracy"] for r in base]).cell()
        lines.append(
            f"| {DATASET_LABELS.get(dataset, dataset)} | {NORM_LABELS[norm]} | "
            f"{REMEDY_LABELS[remedy]} | {len(runs)} | {mean_std(accuracy)} | "
            f"{versus} | {mean_std([r['eval_loss'] for r in runs])} | "
            f"{mean_std([r['wall_seconds'] for r in runs], '.0f')} |"
        )
    return "\n".join(lines)


def node_metrics_table(results: list[dict]) -> str:
    """NFE and the time-variance ratio around each norm, per cell."""
    groups = _groups(results, "node")
    return _metric_table(groups, _ordered(groups), NODE_COLUMNS)


def _failure_list(results: list[dict], study: str) -> list[str]:
    failures = _failures(results, study)
    if not failures:
        return []
    lines = ["Runs that stopped on a non-finite value:", ""]
    return ["\n".join(lines + [f"- {f}" for f in failures])]


def _metric_table(groups, keys, columns: dict) -> str:
    header = ["data set", "norm", "remedy", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        dataset, norm, remedy = key
        cells = [
            DATASET_LABELS.get(dataset, dataset),
            NORM_LABELS[norm],
            REMEDY_LABELS[remedy],
        ]
        for name, fmt in columns.values():
            cells.append(mean_std([r.get(name) for r in groups[key]], fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


SCORE_PREFIXES = ("fd_", "fid_", "is_mean_")
SCORE_NAMES = {"fd": "FD", "fid": "FID", "is_mean": "IS"}
SAMPLER_NAMES = {
    "ddim100": "DDIM 100 steps",
    "ddpm100": "DDPM 100 steps (eta 1)",
    "ddpm1000": "DDPM 1000 steps",
}


def score_title(key: str) -> str:
    """`fd_ddim100` -> `FD, DDIM 100 steps`."""
    metric, _, sampler = key.rpartition("_")
    return f"{SCORE_NAMES.get(metric, metric)}, {SAMPLER_NAMES.get(sampler, sampler)}"


def ddpm_tables(results: list[dict]) -> str:
    """Frechet distances with comparisons, losses at matched steps, blocks."""
    if not _groups(results, "ddpm"):
        return "(no finished DDPM runs)"
    parts = [
        ddpm_score_table(results),
        ddpm_loss_table(results),
        ddpm_block_table(results),
    ]
    return "\n\n".join(parts + _failure_list(results, "ddpm"))


def ddpm_score_table(results: list[dict]) -> str:
    """Sample scores per cell and sampler, and their difference from baseline."""
    groups = _groups(results, "ddpm")
    keys = _ordered(groups)
    scores = [k for k in groups[keys[0]][0] if k.startswith(SCORE_PREFIXES)]
    header = ["remedy", "seeds"]
    for name in scores:
        header += [score_title(name), "vs baseline"]
    header.append("wall time per run (s)")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        runs = groups[key]
        base = groups.get((key[0], key[1], "baseline"), [])
        cells = [REMEDY_LABELS[key[2]], str(len(runs))]
        for name in scores:
            values = [r[name] for r in runs]
            cells.append(mean_std(values, ".2f"))
            if key[2] != "baseline" and len(base) >= 2 and len(runs) >= 2:
                cells.append(compare(values, [r[name] for r in base]).cell(2))
            else:
                cells.append("–")
        cells.append(mean_std([r["wall_seconds"] for r in runs], ".0f"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ddpm_loss_table(results: list[dict]) -> str:
    """Test loss (EMA parameters, fixed batches and noise) at matched steps."""
    groups = _groups(results, "ddpm")
    keys = _ordered(groups)
    steps = sorted({int(s) for r in groups[keys[0]] for s in r["eval_loss"]})
    return _loss_table(groups, keys, steps)


def ddpm_block_table(results: list[dict]) -> str:
    """Time-awareness of every ResBlock after training."""
    groups = _groups(results, "ddpm")
    return _block_table(groups, _ordered(groups))


def _loss_table(groups, keys, steps: list[int]) -> str:
    header = ["remedy", *(f"test loss @ {s}" for s in steps)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = groups.get((keys[0][0], keys[0][1], "baseline"), [])
    last = str(steps[-1])
    for key in keys:
        runs = groups[key]
        cells = [REMEDY_LABELS[key[2]]]
        for step in steps:
            cells.append(mean_std([r["eval_loss"][str(step)] for r in runs], ".4f"))
        if key[2] != "baseline" and len(base) >= 2 and len(runs) >= 2:
            c = compare(
                [r["eval_loss"][last] for r in runs],
                [r["eval_loss"][last] for r in base],
            )
            cells[-1] += f" ({c.cell(4)})"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _block_table(groups, keys) -> str:
    """Time-variance ratio after each block's norm (mean over seeds)."""
    layers = [b["layer"] for b in groups[keys[0]][0]["blocks"]]
    header = ["block", *(REMEDY_LABELS[k[2]] for k in keys)]
    lines = [
        "Time-variance ratio after the norm of each ResBlock (trained EMA "
        "parameters, clean test images, t over [0, T)); exact parameter-level "
        "survival in brackets:",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for i, layer in enumerate(layers):
        cells = [layer.replace("/cond_norm2", "")]
        for key in keys:
            blocks = [r["blocks"][i] for r in groups[key]]
            ratio = mean_std([b["ratio_after"] for b in blocks], ".3f")
            exact = np.mean([b["exact"] for b in blocks])
            cells.append(f"{ratio} [{exact:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    output = ["output (sensitivity)"]
    for key in keys:
        runs = groups[key]
        output.append(
            f"{mean_std([r['output_ratio'] for r in runs], '.3f')} "
            f"({mean_std([r['sensitivity'] for r in runs], '.3f')})"
        )
    lines.append("| " + " | ".join(output) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(remedy: str):
    """One colour per remedy in every figure."""
    import matplotlib

    return matplotlib.colormaps["tab10"](REMEDIES.index(remedy))


def _curve(out: str, result: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    run = result["run"]
    name = f"{run['study']}/{result['cell']}/seed{run['seed']}"
    records = read_metrics(os.path.join(out, name, "metrics.jsonl"))
    points = [(r["step"], r[key]) for r in records if key in r]
    x, y = zip(*points, strict=True) if points else ((), ())
    return np.asarray(x), np.asarray(y)


def _mean_curve(out: str, runs: list[dict], key: str):
    curves = [_curve(out, r, key) for r in runs]
    length = min(len(x) for x, _ in curves)
    x = curves[0][0][:length]
    ys = np.stack([y[:length] for _, y in curves])
    return x, ys.mean(0), ys.std(0)


def plot_node_curves(out: str, results: list[dict], path: Path) -> Path:
    """Test accuracy per epoch (top) and training loss (bottom), mean ± std."""
    plt = _pyplot()
    groups = _groups(results, "node")
    panels = sorted({(k[0], k[1]) for k in groups}, key=lambda p: (p[0], p[1]))
    fig, axes = plt.subplots(
        2, len(panels), figsize=(4.2 * len(panels), 6.5), squeeze=False
    )
    for col, (dataset, norm) in enumerate(panels):
        for remedy in REMEDIES:
            runs = groups.get((dataset, norm, remedy))
            if not runs:
                continue
            label = REMEDY_LABELS[remedy]
            for row, key in enumerate(("eval_accuracy", "loss")):
                x, mean, std = _mean_curve(out, runs, key)
                ax = axes[row, col]
                line = ax.plot(
                    x,
                    mean,
                    marker="o" if row == 0 else None,
                    ms=3,
                    color=_color(remedy),
                )
                ax.fill_between(
                    x, mean - std, mean + std, color=line[0].get_color(), alpha=0.15
                )
                line[0].set_label(label)
        axes[0, col].set_title(f"{DATASET_LABELS[dataset]}, {NORM_LABELS[norm]}")
        axes[0, col].set_ylabel("test accuracy")
        axes[1, col].set_ylabel("training loss")
        axes[1, col].set_xlabel("step")
    handles = {line.get_label(): line for ax in axes[0] for line in ax.get_lines()}
    ncol = min(len(handles), 3 * len(panels))  # about 3 entries fit per panel
    rows = -(-len(handles) // ncol)
    fig.legend(
        [handles[REMEDY_LABELS[r]] for r in REMEDIES if REMEDY_LABELS[r] in handles],
        [REMEDY_LABELS[r] for r in REMEDIES if REMEDY_LABELS[r] in handles],
        loc="lower center",
        ncol=ncol,
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.01 + 0.04 * rows, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_node_time_variance(results: list[dict], path: Path) -> Path:
    """Time-variance ratio after norm2 and norm3, per cell (log scale)."""
    plt = _pyplot()
    groups = _groups(results, "node")
    keys = _ordered(groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(keys)), 4.2))
    x = np.arange(len(keys))
    for offset, name in ((-0.2, "tv_ratio_norm2"), (0.2, "tv_ratio_norm3")):
        values = [[r[name] for r in groups[k]] for k in keys]
        ax.bar(
            x + offset,
            [np.mean(v) for v in values],
            width=0.4,
            yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values],
            label=f"after {name[-5:]}",
        )
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(
        [
            f"{'D' if k[0] == 'digits' else 'F'} {k[1][0].upper()}N "
            f"{SHORT_LABELS[k[2]]}"
            for k in keys
        ],
        rotation=60,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel("time-variance ratio (trained, test inputs)")
    ax.set_title("Neural ODE: how much of the vector field varies with t")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ddpm(out: str, results: list[dict], path: Path) -> Path:
    """Test loss over training (left) and time-awareness through depth (right)."""
    plt = _pyplot()
    groups = _groups(results, "ddpm")
    keys = _ordered(groups)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3))
    for key in keys:
        runs = groups[key]
        label = REMEDY_LABELS[key[2]]
        x, mean, std = _mean_curve(out, runs, "eval_loss")
        line = left.plot(x, mean, marker="o", ms=3, label=label, color=_color(key[2]))
        left.fill_between(
            x, mean - std, mean + std, color=line[0].get_color(), alpha=0.15
        )
        ratios = np.array([[b["ratio_after"] for b in r["blocks"]] for r in runs])
        right.errorbar(
            np.arange(ratios.shape[1]),
            ratios.mean(0),
            yerr=ratios.std(0),
            marker="o",
            ms=3,
            capsize=2,
            label=label,
            color=_color(key[2]),
        )
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("test loss (EMA)")
    left.set_title("DDPM on digits: loss at matched steps")
    layers = [b["layer"].split("/")[0] for b in groups[keys[0]][0]["blocks"]]
    right.set_xticks(np.arange(len(layers)))
    right.set_xticklabels(layers, rotation=45, ha="right", fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("time-variance ratio after the norm")
    right.set_title("Time-awareness of each ResBlock after training")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ddpm_samples(out: str, results: list[dict], path: Path) -> Path | None:
    """The final sample grid of seed 0 of every DDPM cell, side by side."""
    plt = _pyplot()
    groups = _groups(results, "ddpm")
    keys = _ordered(groups)
    grids = []
    for key in keys:
        run = min(groups[key], key=lambda r: r["run"]["seed"])
        folder = os.path.join(
            out,
            run["run"]["study"],
            run["cell"],
            f"seed{run['run']['seed']}",
            "samples",
        )
        files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        if files:
            grids.append(
                (REMEDY_LABELS[key[2]], plt.imread(os.path.join(folder, files[-1])))
            )
    if not grids:
        return None
    fig, axes = plt.subplots(
        1, len(grids), figsize=(3.2 * len(grids), 3.5), squeeze=False
    )
    for ax, (label, image) in zip(axes[0], grids, strict=True):
        ax.imshow(image, cmap="gray")
        ax.set_title(label, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- all


def provenance(results: list[dict], study: str, out: str) -> str:
    """The command that ran `study`'s runs, their number, wall time, hardware."""
    runs = [r for r in results if r["run"]["study"] == study]
    hours = sum(r.get("wall_seconds", 0.0) for r in runs) / 3600
    hardware = "; ".join(sorted({r["hardware"] for r in runs}))
    return (
        f"Command: `{reproduce_command(runs, study, out)}` ({len(runs)} runs, "
        f"{hours:.2f} hours of wall time in all, on {hardware}; each run's own "
        "`timeaware train-*` command is in its `result.json`)."
    )


def reproduce_command(runs: list[dict], study: str, out: str) -> str:
    """The `timeaware reproduce` line that runs exactly these finished runs."""
    scale = runs[0]["run"].get("scale", "cpu") if runs else "cpu"
    full = [
        (r.dataset, r.norm, r.remedy)
        for r in grid(studies=[study], seeds=[0], scale=scale)
    ]
    cells = {(r["run"]["dataset"], r["run"]["norm"], r["run"]["remedy"]) for r in runs}
    parts = ["timeaware reproduce", f"--out {out}", f"--study {study}"]
    if scale != "cpu":
        parts.append(f"--scale {scale}")
    seeds = sorted({r["run"]["seed"] for r in runs})
    if seeds != [0, 1, 2]:
        parts.append("--seeds " + " ".join(map(str, seeds)))
    for index, flag in enumerate(("--datasets", "--norms", "--remedies")):
        choices = list(dict.fromkeys(c[index] for c in full))  # the grid's order
        chosen = {c[index] for c in cells}
        if chosen != set(choices):
            parts.append(flag + " " + " ".join(c for c in choices if c in chosen))
    extra = dict(runs[0]["run"].get("extra", [])) if runs else {}
    if extra:
        parts.append(set_flags(extra))
    return " ".join(parts)


def write_report(out: str, report_dir: str | os.PathLike) -> list[Path]:
    """Write `tables.md` and the figures for every finished run under `out`.

    **Returns:** the paths written.

    **Raises:** `ValueError` if `out` holds no finished run.
    """
    results = load_results(out)
    if not results:
        raise ValueError(
            f"out must hold finished runs (result.json), {out!r} has none."
        )
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written = []
    tables = report_dir / "tables.md"
    hardware = sorted({r["hardware"] for r in results})
    text = [
        "# Reproduction study: measured tables",
        "",
        f"Finished runs: {len(results)}. Hardware: {'; '.join(hardware)}.",
        "",
        "## Neural ODE",
        "",
        provenance(results, "node", out),
        "",
        node_tables(results),
        "",
        "## DDPM",
        "",
        provenance(results, "ddpm", out),
        "",
        ddpm_tables(results),
        "",
    ]
    tables.write_text("\n".join(text), encoding="utf-8")
    written.append(tables)
    if _groups(results, "node"):
        written.append(plot_node_curves(out, results, report_dir / "node_curves.png"))
        written.append(
            plot_node_time_variance(results, report_dir / "node_time_variance.png")
        )
    if _groups(results, "ddpm"):
        written.append(plot_ddpm(out, results, report_dir / "ddpm_loss_depth.png"))
        samples = plot_ddpm_samples(out, results, report_dir / "ddpm_samples.png")
        if samples is not None:
            written.append(samples)
    return written
