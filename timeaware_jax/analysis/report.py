"""Reports: a text table per model and a plot of time-awareness through depth.

`format_table` lines up, for every time-dependent layer, the closed-form
prediction, the exact parameter-level survival and the survival measured by
the probe (time-variance ratio after the normalization divided by the ratio
before it). `plot_depth` draws the probe's ratio through the depth of the
network, one line per variant, one panel per family, on a log scale.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from timeaware_jax.analysis.layers import TimeLayer
from timeaware_jax.analysis.probe import ProbeResult, safe_divide

COLUMNS = (
    "layer",
    "remedy",
    "norm",
    "m",
    "predicted",
    "exact",
    "border",
    "ratio before",
    "ratio after",
    "measured",
)


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number for a table: `-` for missing, three significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def norm_label(layer: TimeLayer) -> str:
    return f"group({layer.groups})" if layer.norm == "group" else layer.norm


def layer_cells(layer: TimeLayer, probe: ProbeResult | None) -> list[str]:
    """The cells of one table row."""
    before = after = float("nan")
    if probe is not None and layer.norm_name is not None:
        before = probe.ratio(layer.norm_name, "in")
        after = probe.ratio(layer.after_name, "out")
    return [
        layer.name,
        layer.conditioning,
        norm_label(layer),
        fmt(layer.m),
        fmt(layer.predicted),
        fmt(layer.exact.fraction),
        fmt(layer.exact.border_fraction, 2),
        fmt(before),
        fmt(after),
        fmt(safe_divide(after, before)),
    ]


def format_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_table(
    layers: Sequence[TimeLayer], probe: ProbeResult | None = None, title: str = ""
) -> str:
    """The report table of one model.

    Columns: layer path, remedy, norm, channels per group `m`, closed-form
    `predicted` survival, `exact` parameter-level survival, the `border`
    share of what survives (ConcatConv), the probe's ratio before and after
    the normalization, and `measured` = after / before. A footer gives the
    output's time-variance ratio and its sensitivity to `t`.
    """
    table = format_rows(COLUMNS, [layer_cells(layer, probe) for layer in layers])
    parts = [title, table] if title else [table]
    if probe is not None:
        parts.append(
            f"output time-variance ratio {fmt(probe.output_ratio)}, "
            f"sensitivity rms(d out/dt)/rms(out) {fmt(probe.sensitivity)}"
        )
    return "\n".join(parts)


def depth_profile(probe: ProbeResult) -> tuple[list[str], np.ndarray]:
    """Names and ratios of the layer outputs through depth, in call order.

    Nested duplicates (a Flax norm inside our `Norm`) and tensors that do not
    vary over inputs (time embeddings, ratio `inf`) are left out.
    """
    outer = [row for row in probe.rows if row.role == "out" and row.name != "<root>"]
    names, ratios = [], []
    for row in outer:
        parent_seen = any(row.name.startswith(f"{n}/") for n in names)
        if parent_seen or not math.isfinite(row.ratio):
            continue
        names.append(row.name)
        ratios.append(row.ratio)
    names.append("output")
    ratios.append(probe.output_ratio)
    return names, np.asarray(ratios)


def plot_depth(
    panels: Mapping[str, Mapping[str, ProbeResult]],
    path: str | Path,
    *,
    title: str = "Time-variance ratio through depth",
) -> Path:
    """Save a PNG: one panel per family, one line per variant.

    **Arguments:**

    - `panels`: `{family: {variant label: ProbeResult}}`.
    - `path`: the PNG file to write; its folder is created.

    **Returns:** the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False
    )
    for ax, (family, variants) in zip(axes[0], panels.items(), strict=True):
        for label, probe in variants.items():
            _, ratios = depth_profile(probe)
            floor = np.where(ratios > 0, ratios, np.nan)
            ax.plot(np.arange(len(ratios)), floor, marker="o", ms=3, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("layer output, in call order")
        ax.set_ylabel("time-variance ratio")
        ax.set_title(family)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
