"""Diagnose where the time signal dies, for reference networks or your own.

Two reference families, each built in the baseline and with every remedy:

- `node`: torchdiffeq's ODE-Net vector field (`ODEFunc`: 64 channels, two
  `ConcatConv`s each followed by a normalization, GroupNorm(32) by default),
  probed with one `t` shared by the batch on a grid over [0, 1], as inside an
  ODE solve. BatchNorm is probed in training mode, the statistics it uses
  inside a solve.
- `ddpm`: a stack of DDPM ResBlocks (128 channels, GroupNorm(32)) fed by the
  DDPM timestep embedding, probed with per-sample `t` on a grid over
  [0, 1000).

The inputs are real images (the embedded digits by default) lifted to the
block's channels by a fixed random 3x3 convolution and ReLU; they stay the
same for every `t`, so every bit of time variance comes through the time
input. DDPM initializes each block's last convolution to zero, which would
hide everything after the first block at initialization; those kernels get
small random values instead, as a trained network has.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from timeaware_jax.analysis import (
    ProbeResult,
    TimeLayer,
    format_table,
    plot_depth,
    probe_time_variance,
    time_layers,
)
from timeaware_jax.data import load_dataset, to_float
from timeaware_jax.diffusion.unet import ResBlock
from timeaware_jax.nn import TimestepEmbedding, check_norm
from timeaware_jax.node.vector_field import ODEFunc

FAMILIES = ("node", "ddpm")

# Remedy name -> (conditioning, use the fewer-groups count).
REMEDIES: dict[str, tuple[str, bool]] = {
    "baseline": ("additive", False),
    "positional": ("positional", False),
    "bias_init": ("bias_init", False),
    "fewer_groups": ("additive", True),
    "scale_shift": ("scale_shift", False),
    "add_after_norm": ("add_after_norm", False),
}
LABELS = {
    "baseline": "baseline",
    "positional": "R1 positional",
    "bias_init": "R2 bias init",
    "fewer_groups": "R3 fewer groups",
    "scale_shift": "R4 scale-shift",
    "add_after_norm": "R4 add after norm",
}


class ResBlockStack(nn.Module):
    """DDPM's timestep embedding feeding a stack of ResBlocks.

    `__call__(x [B, H, W, C], t [B])` with `t` in DDPM steps.
    """

    channels: int = 128
    blocks: int = 4
    conditioning: str = "additive"
    groups: int = 32

    @nn.compact
    def __call__(self, x, t, *, train: bool = False):
        emb = TimestepEmbedding(self.channels, name="temb")(t)
        for i in range(self.blocks):
            x = ResBlock(
                self.channels,
                conditioning=self.conditioning,
                groups=self.groups,
                name=f"block{i}",
            )(x, emb, train=train)
        return x


@dataclass(frozen=True)
class Variant:
    """One network to diagnose: how to call it and what to feed it."""

    family: str
    remedy: str
    norm: str
    groups: int
    module: nn.Module
    apply_fn: Callable
    variables: dict
    x: jax.Array
    ts: np.ndarray
    shared_t: bool
    apply_kwargs: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        label = LABELS.get(self.remedy, self.remedy)
        return f"{label} (G={self.groups})" if self.norm == "group" else label


@dataclass(frozen=True)
class Diagnosis:
    """The layers and the probe of one variant."""

    variant: Variant
    layers: list[TimeLayer]
    probe: ProbeResult

    def table(self) -> str:
        v = self.variant
        title = f"[{v.family}] {v.label}, norm={v.norm}"
        return format_table(self.layers, self.probe, title=title)

    def records(self) -> list[dict]:
        """JSON-ready rows, one per time-dependent layer."""
        v = self.variant
        result = []
        for layer in self.layers:
            before = self.probe.ratio(layer.norm_name or "", "in")
            after = self.probe.ratio(layer.after_name, "out")
            result.append(
                dict(
                    family=v.family,
                    remedy=v.remedy,
                    norm=v.norm,
                    groups=v.groups,
                    layer=layer.name,
                    conditioning=layer.conditioning,
                    m=layer.m,
                    predicted=layer.predicted,
                    exact=layer.exact.fraction,
                    border=layer.exact.border_fraction,
                    ratio_before=before,
                    ratio_after=after,
                    output_ratio=self.probe.output_ratio,
                    sensitivity=self.probe.sensitivity,
                )
            )
        return result


def lift(images: jax.Array, channels: int, key: jax.Array) -> jax.Array:
    """Real images `[N, H, W, c]` to `[N, H, W, channels]` by a fixed random conv."""
    kernel = jr.normal(key, (3, 3, images.shape[-1], channels))
    kernel = kernel * jnp.sqrt(2.0 / (9 * images.shape[-1]))
    dims = ("NHWC", "HWIO", "NHWC")
    h = jax.lax.conv_general_dilated(
        images, kernel, (1, 1), "SAME", dimension_numbers=dims
    )
    return jax.nn.relu(h)


def fill_zero_kernels(params, key: jax.Array, scale: float = 0.05):
    """Replace all-zero conv kernels by small random values (see module docstring)."""
    leaves, treedef = jax.tree.flatten_with_path(params)
    keys = jr.split(key, len(leaves))
    new = []
    for (path, leaf), k in zip(leaves, keys, strict=True):
        is_kernel = getattr(path[-1], "key", None) == "kernel" and leaf.ndim == 4
        if is_kernel and not jnp.any(leaf):
            leaf = scale * jr.normal(k, leaf.shape, leaf.dtype)
        new.append(leaf)
    return jax.tree.unflatten(treedef, new)


def reference_images(dataset: str = "digits", num: int = 32) -> jax.Array:
    """The first `num` test images of `dataset` as floats in [-1, 1]."""
    data = load_dataset(dataset, "test")
    return to_float(data.images[:num])


def build_variant(
    family: str,
    remedy: str,
    *,
    images: jax.Array,
    norm: str = "group",
    groups: int = 32,
    fewer_groups: int = 8,
    num_times: int = 16,
    key: jax.Array | None = None,
    variables=None,
) -> Variant:
    """A reference network of `family` with `remedy`, ready to diagnose.

    `variables` replaces the fresh initialization (a trained or saved set of
    the same architecture). `groups` and `norm` set the baseline; the
    `fewer_groups` remedy uses `fewer_groups` groups.

    **Raises:** `ValueError` for an unknown family, remedy or norm, or a norm
    other than GroupNorm for the `ddpm` family.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}.")
    if remedy not in REMEDIES:
        raise ValueError(f"remedy must be one of {tuple(REMEDIES)}, got {remedy!r}.")
    check_norm(norm, groups)
    conditioning, fewer = REMEDIES[remedy]
    if fewer and norm != "group":
        raise ValueError(
            f"remedy 'fewer_groups' needs norm='group', got norm={norm!r}."
        )
    g = fewer_groups if fewer else groups
    key = jr.key(0) if key is None else key
    lift_key, init_key, fill_key = jr.split(key, 3)

    if family == "node":
        module = ODEFunc(64, norm=norm, groups=g, conditioning=conditioning)
        x = lift(images, 64, lift_key)
        ts = np.linspace(0.0, 1.0, num_times)

        def apply_fn(v, x, t, **kwargs):
            return module.apply(v, t, x, **kwargs)

        batch = norm == "batch"
        kwargs = dict(train=True, mutable=["batch_stats"]) if batch else {}
        if variables is None:
            variables = module.init(init_key, 0.0, x)
        return Variant(
            family, remedy, norm, g, module, apply_fn, variables, x, ts, True, kwargs
        )

    if norm != "group":
        raise ValueError(f"the ddpm family uses norm='group', got norm={norm!r}.")
    module = ResBlockStack(128, conditioning=conditioning, groups=g)
    x = lift(images, 128, lift_key)
    ts = np.linspace(0.0, 999.0, num_times)
    if variables is None:
        variables = module.init(init_key, x, jnp.zeros(x.shape[0]))
        variables = {"params": fill_zero_kernels(variables["params"], fill_key)}
    return Variant(
        family, remedy, norm, g, module, module.apply, variables, x, ts, False
    )


def diagnose_variant(variant: Variant) -> Diagnosis:
    """Exact survival of every time-dependent layer, and the empirical probe."""
    layers = time_layers(
        variant.apply_fn,
        variant.variables,
        variant.x,
        variant.ts,
        shared_t=variant.shared_t,
        apply_kwargs=variant.apply_kwargs,
    )
    probe = probe_time_variance(
        variant.apply_fn,
        variant.variables,
        variant.x,
        variant.ts,
        batched_t=not variant.shared_t,
        apply_kwargs=variant.apply_kwargs,
    )
    return Diagnosis(variant, layers, probe)


def load_variables(path: str | Path, template) -> dict:
    """Variables saved with `flax.serialization.to_bytes`, checked against a template.

    **Raises:** `FileNotFoundError` for a missing file and `ValueError` when
    its structure or shapes differ from the reference architecture's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"params file not found: {path}")
    try:
        restored = flax.serialization.from_bytes(template, path.read_bytes())
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"params file {path} does not hold variables of the chosen reference "
            f"architecture: {error}"
        ) from error
    shapes = jax.tree.map(jnp.shape, template)
    if jax.tree.map(jnp.shape, restored) != shapes:
        raise ValueError(
            f"params file {path} has shapes that differ from the reference "
            "architecture's; pick the matching --family, --norm, --groups and "
            "--remedy."
        )
    return restored


def diagnose(
    families: Sequence[str] = FAMILIES,
    remedies: Sequence[str] = tuple(REMEDIES),
    *,
    dataset: str = "digits",
    norm: str = "group",
    groups: int = 32,
    fewer_groups: int = 8,
    num_images: int = 32,
    params_file: str | Path | None = None,
    seed: int = 0,
) -> list[Diagnosis]:
    """Diagnose every family in every remedy on real images.

    `params_file` (one family and one remedy only) replaces the fresh
    initialization with saved variables.

    **Returns:** one `Diagnosis` per (family, remedy), families outermost.

    **Raises:** `ValueError` for unknown names, or a `params_file` with more
    than one family or remedy.
    """
    if params_file is not None and (len(families) != 1 or len(remedies) != 1):
        raise ValueError(
            "params_file needs exactly one family and one remedy, got "
            f"families={list(families)}, remedies={list(remedies)}."
        )
    images = reference_images(dataset, num_images)
    results = []
    for family in families:
        family_norm = norm if family == "node" else "group"
        for remedy in remedies:
            if remedy == "fewer_groups" and family_norm != "group":
                continue
            kwargs = dict(
                images=images,
                norm=family_norm,
                groups=groups,
                fewer_groups=fewer_groups,
                key=jr.key(seed),
            )
            variant = build_variant(family, remedy, **kwargs)
            if params_file is not None:
                variables = load_variables(params_file, variant.variables)
                variant = build_variant(family, remedy, variables=variables, **kwargs)
            results.append(diagnose_variant(variant))
    return results


def plot_diagnoses(results: Sequence[Diagnosis], path: str | Path) -> Path:
    """One panel per family, one line per remedy (`plot_depth`)."""
    panels: dict[str, dict[str, ProbeResult]] = {}
    for result in results:
        v = result.variant
        panels.setdefault(f"{v.family} (norm={v.norm})", {})[v.label] = result.probe
    return plot_depth(panels, path)


def checkpoint_family(workdir: str | Path) -> str:
    """`"ddpm"` or `"node"`, read from the run's `config.json`.

    **Raises:** `FileNotFoundError` when `workdir` holds no `config.json`.
    """
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no config.json in {workdir}: pass the workdir of a `timeaware "
            "train-node` or `timeaware train-ddpm` run."
        )
    return "ddpm" if "diffusion" in json.loads(path.read_text()) else "node"


def node_checkpoint_variant(workdir, num_images: int) -> Variant:
    """The trained ODE-Net's vector field, fed the stem features of real images.

    Probed in inference mode (BatchNorm with its running averages), with one
    `t` shared by the batch on a grid over [0, 1].
    """
    from timeaware_jax.node import load_checkpoint
    from timeaware_jax.node.classifier import vector_field_variables

    model, variables, config = load_checkpoint(workdir)
    data = load_dataset(config.data.name, "test", data_dir=config.data.data_dir)
    images = to_float(data.images[:num_images])
    y0 = model.apply(variables, images, method=model.stem_features)
    vector_field = model.vector_field()

    def apply_fn(v, x, t, **kwargs):
        return vector_field.apply(v, t, x, **kwargs)

    m = config.model
    return Variant(
        family="node",
        remedy=f"{m.conditioning} (trained)",
        norm=m.norm,
        groups=m.groups,
        module=vector_field,
        apply_fn=apply_fn,
        variables=vector_field_variables(variables),
        x=y0,
        ts=np.linspace(0.0, 1.0, 16),
        shared_t=True,
    )


def ddpm_checkpoint_variant(workdir, num_images: int) -> Variant:
    """The trained U-Net, fed clean test images and per-sample `t` over [0, T).

    The images stay the same for every `t`, so the probe isolates the time
    embedding's path from the noise level of the input.
    """
    from timeaware_jax.diffusion import load_checkpoint

    model, params, schedule, config = load_checkpoint(workdir)
    data = load_dataset(config.data.name, "test", data_dir=config.data.data_dir)
    images = to_float(data.images[:num_images])
    num_timesteps = config.diffusion.num_timesteps
    return Variant(
        family="ddpm",
        remedy=f"{config.model.conditioning} (trained)",
        norm="group",
        groups=config.model.groups,
        module=model,
        apply_fn=model.apply,
        variables={"params": params},
        x=images,
        ts=np.linspace(0.0, num_timesteps - 1.0, 16),
        shared_t=False,
    )


def diagnose_checkpoint(
    workdir: str | Path, *, num_images: int = 32
) -> list[Diagnosis]:
    """Diagnose a trained `train-node` or `train-ddpm` run from its workdir.

    **Returns:** a one-element list with the `Diagnosis` of the trained model.

    **Raises:** `FileNotFoundError` for a workdir without config or checkpoint.
    """
    if checkpoint_family(workdir) == "ddpm":
        variant = ddpm_checkpoint_variant(workdir, num_images)
    else:
        variant = node_checkpoint_variant(workdir, num_images)
    return [diagnose_variant(variant)]
