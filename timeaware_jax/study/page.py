"""Keep the measured tables of a hand-written results page current.

A page such as `docs/results.md` is prose around tables of numbers. Each
table is held between two markers that name the table and the study output
it comes from:

    <!-- table node_accuracy from experiments/results -->
    | data set | norm | ... |
    <!-- end table -->

`render_page` recomputes every marked table from the runs' `result.json`
files, so that the prose can be edited by hand while the numbers always come
from the committed logs; `timeaware reproduce --page PAGE` rewrites the page
in place.
"""

import os
import re
from collections.abc import Callable
from pathlib import Path

from timeaware_jax.study.grid import load_results
from timeaware_jax.study.report import (
    ddpm_block_table,
    ddpm_loss_table,
    ddpm_score_table,
    node_accuracy_table,
    node_metrics_table,
    provenance,
)

TABLES: dict[str, Callable[[list[dict], str], str]] = {
    "node_accuracy": lambda results, out: node_accuracy_table(results),
    "node_metrics": lambda results, out: node_metrics_table(results),
    "node_provenance": lambda results, out: provenance(results, "node", out),
    "ddpm_scores": lambda results, out: ddpm_score_table(results),
    "ddpm_loss": lambda results, out: ddpm_loss_table(results),
    "ddpm_blocks": lambda results, out: ddpm_block_table(results),
    "ddpm_provenance": lambda results, out: provenance(results, "ddpm", out),
}

_BLOCK = re.compile(
    r"(?P<open><!-- table (?P<name>\S+) from (?P<out>\S+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<close><!-- end table -->)",
    re.DOTALL,
)


def render_page(text: str, root: str | os.PathLike = ".") -> str:
    """`text` with every marked table recomputed from its study output.

    Output directories in the markers are relative to `root`.

    **Raises:** `ValueError` for an unknown table name or an output
    directory without finished runs.
    """
    cache: dict[str, list[dict]] = {}

    def fill(match: re.Match) -> str:
        name, out = match["name"], match["out"]
        if name not in TABLES:
            raise ValueError(
                f"the page names table {name!r}; known tables: {tuple(TABLES)}."
            )
        if out not in cache:
            cache[out] = load_results(os.path.join(root, out))
            if not cache[out]:
                raise ValueError(
                    f"the page's table {name!r} comes from {out!r}, which holds "
                    "no finished runs (result.json)."
                )
        body = TABLES[name](cache[out], out)
        return f"{match['open']}{body}\n{match['close']}"

    return _BLOCK.sub(fill, text)


def update_page(path: str | os.PathLike, root: str | os.PathLike = ".") -> bool:
    """Rewrite the marked tables of the page at `path`; `True` if it changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    rendered = render_page(text, root)
    if rendered != text:
        path.write_text(rendered, encoding="utf-8")
    return rendered != text
