"""`timeaware diagnose`: where does the time signal die, and which remedy helps.

With no arguments: torchdiffeq's ODE-Net vector field and a stack of DDPM
ResBlocks, in the baseline and every remedy, probed on the embedded digits.
Prints one table per network, writes `report.txt`, `layers.jsonl` (one JSON
line per time-dependent layer) and `time_variance.png` into `--out`.
"""

import argparse
import json
import math
from pathlib import Path

from timeaware_jax.nn import NORMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from timeaware_jax.diagnose import FAMILIES, REMEDIES

    parser.add_argument(
        "--family",
        choices=(*FAMILIES, "all"),
        default="all",
        help="reference network: ODE-Net vector field, DDPM ResBlocks, or both",
    )
    parser.add_argument(
        "--remedy",
        choices=(*REMEDIES, "all"),
        default="all",
        help="time conditioning to diagnose (default: baseline and every remedy)",
    )
    parser.add_argument(
        "--norm",
        choices=[n for n in NORMS if n != "none"],
        default="group",
        help="normalization of the ODE-Net (the DDPM blocks use GroupNorm)",
    )
    parser.add_argument("--groups", type=int, default=32, help="GroupNorm groups")
    parser.add_argument(
        "--fewer-groups", type=int, default=8, help="groups of the R3 remedy"
    )
    parser.add_argument(
        "--dataset", default="digits", help="images to probe with (default: digits)"
    )
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument(
        "--params",
        default=None,
        help="variables saved with flax.serialization.to_bytes for one family "
        "and one remedy, instead of a fresh initialization",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="workdir of a trained train-node or train-ddpm run to diagnose",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default="runs/diagnose", help="output folder (report, JSON, plot)"
    )


def jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_outputs(results, out: Path) -> tuple[Path, Path, Path]:
    from timeaware_jax.diagnose import plot_diagnoses

    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.txt"
    report.write_text("\n\n".join(r.table() for r in results) + "\n")
    layers = out / "layers.jsonl"
    with layers.open("w") as f:
        for result in results:
            for record in result.records():
                record = {k: jsonable(v) for k, v in record.items()}
                f.write(json.dumps(record) + "\n")
    plot = plot_diagnoses(results, out / "time_variance.png")
    return report, layers, plot


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from timeaware_jax.diagnose import FAMILIES, REMEDIES, diagnose, diagnose_checkpoint

    if args.checkpoint is not None:
        results = diagnose_checkpoint(args.checkpoint, num_images=args.num_images)
    else:
        families = FAMILIES if args.family == "all" else (args.family,)
        remedies = tuple(REMEDIES) if args.remedy == "all" else (args.remedy,)
        jobs = [(f, r) for f in families for r in remedies]
        results = []
        for family, remedy in tqdm(jobs, desc="diagnose", unit="network"):
            results += diagnose(
                (family,),
                (remedy,),
                dataset=args.dataset,
                norm=args.norm,
                groups=args.groups,
                fewer_groups=args.fewer_groups,
                num_images=args.num_images,
                params_file=args.params,
                seed=args.seed,
            )
    for result in results:
        print(result.table(), end="\n\n")
    report, layers, plot = write_outputs(results, Path(args.out))
    print(f"wrote {report}, {layers} and {plot}")
    return 0
