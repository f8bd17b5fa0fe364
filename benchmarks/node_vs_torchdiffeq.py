"""The MNIST ODE-Net in torchdiffeq (PyTorch CPU) and in timeaware-jax, side by side.

    python benchmarks/node_vs_torchdiffeq.py [--batch 128] [--repeats 3]

Both sides run the same network (torchdiffeq's `odenet_mnist` with the
convolutional stem, 64 channels, GroupNorm(32); 208,266 parameters) with the
same weights (copied from PyTorch into the Flax parameter tree), Dopri5 with
rtol = atol = 1e-3 over [0, 1], backpropagation through the solver
(torchdiffeq's `odeint`, diffrax's `RecursiveCheckpointAdjoint`), on one batch
of 28x28 Fashion-MNIST images (random images when the files are absent).

It prints the time per batch of the forward pass and of forward plus backward
(median of `--repeats` timed runs after one warm-up; JAX compiled once), the
number of vector-field evaluations each solver made, and the ratio
torch time / JAX time. Needs the `bench` extra (torch, torchdiffeq).

Measured on 2 CPU cores (otherwise idle), batch 128, 3 repeats, 33 s in all:
forward 0.377 s (torchdiffeq) against 0.575 s (timeaware-jax), ratio 0.66;
forward+backward 0.845 s against 2.225 s, ratio 0.38; forward NFE 32 against
37 (diffrax starts from a step of 0.01 where torchdiffeq picks its first
step with two extra evaluations); largest logit difference 8.9e-4. On this
CPU, PyTorch is faster; the difference is largest in the backward pass
through diffrax's checkpointed solver loop.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn as tnn
from torchdiffeq import odeint

from timeaware_jax.node import ODENet

# ---------------------------------------------------------------- the PyTorch model


class TorchConcatConv(tnn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = tnn.Conv2d(channels + 1, channels, 3, 1, 1)

    def forward(self, t, x):
        tt = torch.ones_like(x[:, :1]) * t
        return self.conv(torch.cat([tt, x], 1))


class TorchODEFunc(tnn.Module):
    def __init__(self, channels):
        super().__init__()
        self.norm1 = tnn.GroupNorm(32, channels)
        self.conv1 = TorchConcatConv(channels)
        self.norm2 = tnn.GroupNorm(32, channels)
        self.conv2 = TorchConcatConv(channels)
        self.norm3 = tnn.GroupNorm(32, channels)
        self.nfe = 0

    def forward(self, t, x):
        self.nfe += 1
        h = self.conv1(t, torch.relu(self.norm1(x)))
        h = self.conv2(t, torch.relu(self.norm2(h)))
        return self.norm3(h)


class TorchODENet(tnn.Module):
    def __init__(self, channels=64, classes=10):
        super().__init__()
        self.c0 = tnn.Conv2d(1, channels, 3, 1)
        self.n1 = tnn.GroupNorm(32, channels)
        self.c1 = tnn.Conv2d(channels, channels, 4, 2, 1)
        self.n2 = tnn.GroupNorm(32, channels)
        self.c2 = tnn.Conv2d(channels, channels, 4, 2, 1)
        self.func = TorchODEFunc(channels)
        self.head_norm = tnn.GroupNorm(32, channels)
        self.head = tnn.Linear(channels, classes)

    def forward(self, x):
        h = self.c0(x)
        h = self.c1(torch.relu(self.n1(h)))
        h = self.c2(torch.relu(self.n2(h)))
        ts = torch.tensor([0.0, 1.0])
        h = odeint(self.func, h, ts, rtol=1e-3, atol=1e-3, method="dopri5")[1]
        h = torch.relu(self.head_norm(h)).mean(dim=(2, 3))
        return self.head(h)


# ---------------------------------------------------------------- weight transfer


def _conv(module):
    kernel = module.weight.detach().numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
    return {"kernel": kernel, "bias": module.bias.detach().numpy()}


def _group_norm(module):
    params = {"scale": module.weight.detach().numpy()}
    params["bias"] = module.bias.detach().numpy()
    return {"group_norm": params}


def flax_params(net: TorchODENet) -> dict:
    """The Flax `ODENet` parameters holding `net`'s weights."""
    func = net.func
    head = {"kernel": net.head.weight.detach().numpy().T}
    head["bias"] = net.head.bias.detach().numpy()
    params = {
        "c0": _conv(net.c0),
        "c1": _conv(net.c1),
        "c2": _conv(net.c2),
        "n1": _group_norm(net.n1),
        "n2": _group_norm(net.n2),
        "ode_block": {
            "vector_field": {
                "norm1": _group_norm(func.norm1),
                "conv1": _conv(func.conv1.conv),
                "norm2": _group_norm(func.norm2),
                "conv2": _conv(func.conv2.conv),
                "norm3": _group_norm(func.norm3),
            }
        },
        "head_norm": _group_norm(net.head_norm),
        "head": head,
    }
    return jax.tree.map(jnp.asarray, params)


# ---------------------------------------------------------------- timing


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up (and JAX compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _images(batch: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from timeaware_jax.data import load_dataset

        data = load_dataset("fashion_mnist", "test")
        images = data.images[:batch].astype(np.float32) / 127.5 - 1.0
        return images, data.labels[:batch].astype(np.int64), "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (batch, 28, 28, 1)).astype(np.float32)
        return images, rng.integers(0, 10, batch), "random images"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    net = TorchODENet()
    images, labels, source = _images(args.batch)
    x_torch = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())  # NHWC -> NCHW
    y_torch = torch.from_numpy(labels)

    model = ODENet(stem="conv", features=64, norm="group", groups=32)
    variables = {"params": flax_params(net)}
    x_jax, y_jax = jnp.asarray(images), jnp.asarray(labels)

    def jax_loss(params):
        logits, state = model.apply({"params": params}, x_jax, mutable=["ode_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y_jax)
        return loss.mean(), (logits, state["ode_stats"]["ode_block"]["nfe"])

    jax_forward = jax.jit(lambda p: jax_loss(p)[1])
    jax_grad = jax.jit(jax.grad(jax_loss, has_aux=True))
    logits_jax, nfe_jax = jax_forward(variables["params"])

    def torch_forward():
        with torch.no_grad():
            return net(x_torch)

    def torch_step():
        net.zero_grad()
        tnn.functional.cross_entropy(net(x_torch), y_torch).backward()

    net.func.nfe = 0
    logits_torch = torch_forward()
    nfe_torch = net.func.nfe
    gap = np.abs(logits_torch.numpy() - np.asarray(logits_jax)).max()

    rows = [
        (
            "forward",
            _median_time(torch_forward, args.repeats),
            _median_time(
                lambda: jax.block_until_ready(jax_forward(variables["params"])),
                args.repeats,
            ),
        ),
        (
            "forward+backward",
            _median_time(torch_step, args.repeats),
            _median_time(
                lambda: jax.block_until_ready(jax_grad(variables["params"])),
                args.repeats,
            ),
        ),
    ]

    print(
        f"ODE-Net (odenet_mnist, conv stem, GroupNorm(32), 64 channels), Dopri5 "
        f"rtol=atol=1e-3, batch {args.batch} of {source}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"jax {jax.__version__} on {jax.default_backend()}"
    )
    print(f"max |logits torch - logits jax| = {gap:.2e}")
    print()
    print("| pass | torchdiffeq s/batch | timeaware-jax s/batch | torch / jax |")
    print("|---|---|---|---|")
    for name, t_torch, t_jax in rows:
        print(f"| {name} | {t_torch:.3f} | {t_jax:.3f} | {t_torch / t_jax:.2f} |")
    print()
    print(f"forward NFE: torchdiffeq {nfe_torch}, timeaware-jax {int(nfe_jax)}")


if __name__ == "__main__":
    main()
