"""Time one DDPM training step here and in diffusers' PyTorch `UNet2DModel`.

Both sides build the same U-Net (Ho et al.'s layout: channel multipliers,
two ResBlocks per level going down and three going up, single-head attention
at 16x16, GroupNorm, sinusoidal embedding with a two-layer MLP) and run the
same step: random timesteps and noise, epsilon MSE, backward, global-norm
clipping at 1.0, Adam, and an EMA of the parameters. The parameter counts at
the paper's CIFAR-10 size are printed for both as a check of the layout.

    python benchmarks/ddpm_vs_diffusers.py                 # CPU, reduced size
    python benchmarks/ddpm_vs_diffusers.py --threads 0     # frameworks' threading
    python benchmarks/ddpm_vs_diffusers.py --device gpu    # both on CUDA

On the CPU both run single-threaded by default (`--threads 1`), which keeps
the comparison fair on a busy machine. Prints one JSON object: seconds per
step for each, and the ratio (timeaware-jax time / diffusers time; below 1
means JAX is faster).
Needs the `bench` extra (torch, diffusers).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import sys
import time


def _threads(argv: list[str]) -> int:
    """The --threads value (default 1), read before JAX starts its thread pool."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return 1


if _threads(sys.argv) == 1:
    # One thread on each side: on a shared machine thread pools that
    # outnumber the idle cores make timings meaningless (OpenMP spin-waits).
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import UNet2DModel  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from timeaware_jax.diffusion import UNet, count_parameters  # noqa: E402
from timeaware_jax.train.ddpm import create_train_state, make_train_step  # noqa: E402
from timeaware_jax.train.sharding import make_mesh, replicated_sharding  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def diffusers_unet(ch, ch_mult, attn_resolutions, image_size, channels, groups):
    """diffusers' UNet2DModel with DDPM's layout (as in google/ddpm-cifar10-32)."""
    down, up, size = [], [], image_size
    for level in range(len(ch_mult)):
        down.append("AttnDownBlock2D" if size in attn_resolutions else "DownBlock2D")
        size //= 2 if level < len(ch_mult) - 1 else 1
    for level in reversed(range(len(ch_mult))):
        size = image_size // 2**level
        up.append("AttnUpBlock2D" if size in attn_resolutions else "UpBlock2D")
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=2,
        block_out_channels=tuple(ch * m for m in ch_mult),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=groups,
        norm_eps=1e-6,
        attention_head_dim=None,
        downsample_padding=0,
        flip_sin_to_cos=False,
        freq_shift=1,
        dropout=0.1,
    )


def jax_config(ch, ch_mult, image_size, channels, groups, batch_size):
    path = ROOT / "experiments" / "configs" / "ddpm_cifar10.py"
    spec = importlib.util.spec_from_file_location("ddpm_cifar10_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.data.name = "cifar10"
    config.data.image_size, config.data.channels = image_size, channels
    config.data.random_flip = False
    config.model.update({"ch": ch, "ch_mult": ch_mult, "groups": groups})
    config.optim.batch_size = batch_size
    return config


def time_jax(config, steps, warmup):
    mesh = make_mesh()
    state = jax.device_put(
        create_train_state(config, jr.key(0)), replicated_sharding(mesh)
    )
    train_step = make_train_step(config, mesh)
    sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
    size, channels = config.data.image_size, config.data.channels
    shape = (1, config.optim.batch_size, size, size, channels)
    images = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    images = jax.device_put(images, sharding)
    for _ in range(warmup):
        state, metrics = train_step(state, images)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = train_step(state, images)
    jax.block_until_ready(metrics)
    return (time.perf_counter() - start) / steps


def time_torch(model, batch_size, image_size, channels, steps, warmup, device):
    model = model.to(device).train()
    ema = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000), 0).to(device)
    x_0 = (
        torch.rand(batch_size, channels, image_size, image_size, device=device) * 2 - 1
    )

    def step():
        t = torch.randint(0, 1000, (batch_size,), device=device)
        eps = torch.randn_like(x_0)
        a = alpha_bar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x_0 + (1 - a).sqrt() * eps
        loss = torch.mean((model(x_t, t).sample - eps) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, list(model.parameters()), 1 - 0.9999)
        return loss

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def parameter_counts():
    """Both models at the CIFAR-10 size of Ho et al. (no compute on the JAX side)."""
    model = UNet()
    shapes = jax.eval_shape(
        model.init, jr.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1,))
    )
    reference = diffusers_unet(128, (1, 2, 2, 2), (16,), 32, 3, 32)
    return (
        count_parameters(shapes["params"]),
        sum(p.numel() for p in reference.parameters()),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--ch", type=int, default=None, help="base channels")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per framework (1: both single-threaded; 0: their defaults)",
    )
    args = parser.parse_args(argv)

    gpu = args.device == "gpu"
    if gpu and not (torch.cuda.is_available() and jax.default_backend() == "gpu"):
        print(
            "error: --device gpu needs CUDA builds of both torch and jax "
            f"(torch.cuda: {torch.cuda.is_available()}, jax: {jax.default_backend()})",
            file=sys.stderr,
        )
        return 1
    if not gpu:
        jax.config.update("jax_platforms", "cpu")
        if args.threads > 0:
            torch.set_num_threads(args.threads)
    ch = args.ch or (128 if gpu else 32)
    batch_size = args.batch_size or (128 if gpu else 8)
    steps = args.steps or (50 if gpu else 10)
    ch_mult, image_size, channels, groups = (1, 2, 2, 2), 32, 3, min(32, ch)

    ours_count, theirs_count = parameter_counts()
    config = jax_config(ch, ch_mult, image_size, channels, groups, batch_size)
    seconds_jax = time_jax(config, steps, args.warmup)
    torch.manual_seed(0)
    model = diffusers_unet(ch, ch_mult, (16,), image_size, channels, groups)
    seconds_torch = time_torch(
        model,
        batch_size,
        image_size,
        channels,
        steps,
        args.warmup,
        "cuda" if gpu else "cpu",
    )
    result = {
        "device": args.device,
        "ch": ch,
        "ch_mult": ch_mult,
        "image_size": image_size,
        "batch_size": batch_size,
        "timed_steps": steps,
        "cpu_threads": {"torch": torch.get_num_threads(), "os": os.cpu_count()},
        "params_cifar10_timeaware_jax": ours_count,
        "params_cifar10_diffusers": theirs_count,
        "seconds_per_step_timeaware_jax": round(seconds_jax, 4),
        "seconds_per_step_diffusers": round(seconds_torch, 4),
        "ratio_jax_over_diffusers": round(seconds_jax / seconds_torch, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
