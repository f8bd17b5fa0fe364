"""`timeaware eval-ddpm`: sample a DDPM checkpoint and score the samples.

    timeaware eval-ddpm --workdir runs/ddpm_digits --num 1000 --sampler ddim

Reports FID and IS, or the small-data Frechet distance for digits and
Fashion-MNIST runs; prints the result as JSON and appends it to
`<workdir>/eval.jsonl` (or `--out`).
"""

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="a train-ddpm directory")
    parser.add_argument("--num", type=int, default=1000, help="images to sample")
    parser.add_argument(
        "--sampler", default="ddim", choices=("ddpm", "ddim", "ode"), help="sampler"
    )
    parser.add_argument("--steps", type=int, default=100, help="DDIM or ODE steps")
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity")
    parser.add_argument(
        "--metric",
        default=None,
        choices=("fd-digits", "fd-fashion", "fid"),
        help="default: fd-digits / fd-fashion for those data sets, else fid",
    )
    parser.add_argument("--weights", default=None, help="FID Inception weights")
    parser.add_argument("--batch", type=int, default=256, help="images per call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=int, default=None, help="checkpoint step")
    parser.add_argument("--out", default=None, help="JSON lines file to append to")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from timeaware_jax.evaluate import evaluate_checkpoint

    if args.num < 1:
        raise SystemExit(f"error: --num must be positive, got {args.num}")
    sample_bar = tqdm(total=args.num, desc="sample", unit="img")
    metric_bar = tqdm(total=args.num, desc="score", unit="img")

    def advance(bar):
        return lambda done: bar.update(done - bar.n)

    try:
        result = evaluate_checkpoint(
            args.workdir,
            num_samples=args.num,
            sampler=args.sampler,
            num_steps=args.steps,
            eta=args.eta,
            metric=args.metric,
            weights=args.weights,
            batch_size=args.batch,
            seed=args.seed,
            step=args.step,
            sample_progress=advance(sample_bar),
            metric_progress=advance(metric_bar),
        )
    finally:
        sample_bar.close()
        metric_bar.close()
    out = Path(args.out) if args.out else Path(args.workdir) / "eval.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result))
    return 0
