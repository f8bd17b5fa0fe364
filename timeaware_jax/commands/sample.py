"""`timeaware sample`: draw images from a trained DDPM and save a PNG grid.

    timeaware sample --workdir runs/ddpm_digits_baseline --num 64 \
        --sampler ddim --steps 100 --out grid.png [--npz samples.npz]
"""

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command-line arguments."""
    parser.add_argument("--workdir", required=True, help="a train-ddpm directory")
    parser.add_argument("--num", type=int, default=64, help="number of images")
    parser.add_argument(
        "--sampler", default="ddpm", choices=("ddpm", "ddim", "ode"), help="sampler"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="DDIM or fixed ODE steps"
    )
    parser.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity")
    parser.add_argument("--solver", default="tsit5", help="ODE solver name")
    parser.add_argument("--rtol", type=float, default=1e-5, help="ODE rtol")
    parser.add_argument("--atol", type=float, default=1e-5, help="ODE atol")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step")
    parser.add_argument("--out", default="samples.png", help="PNG grid path")
    parser.add_argument("--npz", default=None, help="also save the images here")
    parser.add_argument("--scale", type=int, default=None, help="pixel repeat in PNG")


def run(args: argparse.Namespace) -> int:
    """Sample, save the grid (and the arrays), print a JSON summary."""
    import jax.random as jr
    import numpy as np

    from timeaware_jax.diffusion import load_checkpoint, sample
    from timeaware_jax.diffusion.grid import save_image_grid

    if args.num < 1:
        print(f"error: --num must be positive, got {args.num}", file=sys.stderr)
        return 2
    model, params, schedule, config = load_checkpoint(args.workdir, step=args.step)
    images, nfe = sample(
        model,
        params,
        schedule,
        jr.key(args.seed),
        args.num,
        sampler=args.sampler,
        num_steps=args.steps,
        eta=args.eta,
        solver=args.solver,
        rtol=args.rtol,
        atol=args.atol,
        prediction=config.diffusion.prediction,
        return_nfe=True,
    )
    images = np.asarray(images)
    scale = args.scale or config.sample.get("scale", 1)
    save_image_grid(images, args.out, scale=scale)
    if args.npz:
        np.savez_compressed(args.npz, images=images)
    summary = {
        "out": args.out,
        "num": args.num,
        "sampler": args.sampler,
        "nfe": int(nfe),
    }
    print(json.dumps(summary))
    return 0
