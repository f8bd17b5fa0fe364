"""Exact, parameter-level survival of the time signal across a normalization.

No data: the time field `tau(t)` that a layer adds to its output is built from
the parameters alone, its time-varying part `delta(t) = tau(t) - mean_t tau`
is centered over the normalization's statistics set, and the fraction of its
energy that remains is reported:

    survival = sum_t ||center_S(delta(t))||^2 / sum_t ||delta(t)||^2

For `ConcatConv` the field is the convolution of the time channel alone with
the kernel's time slice, zero padding included, so the border pattern that
even InstanceNorm cannot remove is computed exactly. For additive-offset
blocks (`TimeConditionedNorm`) it is the time projection applied to the
embedding on a grid of `t`.
"""

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from timeaware_jax.nn.concat_conv import (
    POSITIONAL_TIME_SCALE,
    conv_nhwc,
    time_channel,
)
from timeaware_jax.nn.conditioning import positional_pattern
from timeaware_jax.nn.norm import check_norm, num_groups


@dataclass(frozen=True)
class Survival:
    """The energy of a time field before and after centering.

    `fraction` is `surviving / total` (0 when there is no time signal at all);
    `border_fraction` is the share of the surviving energy on border pixels
    (`nan` where the notion does not apply).
    """

    total: float
    surviving: float
    border_fraction: float = float("nan")

    @property
    def fraction(self) -> float:
        return self.surviving / self.total if self.total > 0 else 0.0


def center_over_statistics_set(
    field: Float[Array, "batch height width channels"],
    norm: str,
    groups: int = 32,
    *,
    shared_t: bool = True,
) -> Float[Array, "batch height width channels"]:
    """Subtract from `field` its mean over each normalization statistics set.

    The leading axis indexes samples (here: times). With BatchNorm and shared
    `t`, each time is its own batch and the mean runs over pixels; with
    per-sample `t` it also runs over the leading axis.
    """
    check_norm(norm, groups)
    if field.ndim != 4:
        raise ValueError(
            f"field must have shape [B, H, W, C], got shape {field.shape}."
        )
    if norm == "none":
        return field
    if norm == "batch":
        axes = (1, 2) if shared_t else (0, 1, 2)
        return field - jnp.mean(field, axis=axes, keepdims=True)
    b, h, w, c = field.shape
    g = num_groups(norm, groups, c)
    grouped = field.reshape(b, h, w, g, c // g)  # [B, H, W, C] -> [B, H, W, G, m]
    grouped = grouped - jnp.mean(grouped, axis=(1, 2, 4), keepdims=True)
    return grouped.reshape(b, h, w, c)  # [B, H, W, G, m] -> [B, H, W, C]


def border_mask(height: int, width: int, margin: int = 1) -> np.ndarray:
    """Boolean `[H, W]` mask of the pixels within `margin` of the image edge."""
    mask = np.zeros((height, width), dtype=bool)
    mask[:margin] = mask[-margin:] = True
    mask[:, :margin] = mask[:, -margin:] = True
    return mask


def field_survival(
    field: Float[Array, "times height width channels"],
    norm: str,
    groups: int = 32,
    *,
    shared_t: bool = True,
    border_margin: int | None = None,
) -> Survival:
    """Survival of the time-varying part of `field` (one slice per time)."""
    delta = field - jnp.mean(field, axis=0, keepdims=True)
    centered = center_over_statistics_set(delta, norm, groups, shared_t=shared_t)
    total = float(jnp.sum(delta**2))
    surviving = float(jnp.sum(centered**2))
    border = float("nan")
    if border_margin and surviving > 0:
        mask = border_mask(field.shape[1], field.shape[2], border_margin)
        border = float(jnp.sum(centered[:, mask] ** 2)) / surviving
    return Survival(total=total, surviving=surviving, border_fraction=border)


def concat_conv_time_field(
    kernel: Float[Array, "k k cin features"],
    ts: ArrayLike,
    height: int,
    width: int,
    *,
    strides: int = 1,
    padding: int = 1,
    transpose: bool = False,
    time_input: str = "constant",
    time_scale: float = POSITIONAL_TIME_SCALE,
    max_period: float = 100.0,
) -> Float[Array, "times height2 width2 features"]:
    """The part of a `ConcatConv` output that comes from its time channel.

    `conv(time channel, kernel[:, :, :1])` with zero padding, for each time in
    `ts` (shape `[T]`); `height`, `width` are the layer's input size. For the
    constant channel this is `t * K(p)`, `K(p)` the partial kernel sums.
    """
    ts = jnp.atleast_1d(jnp.asarray(ts, dtype=jnp.float32))
    channel = time_channel(
        ts, height, width, time_input, time_scale=time_scale, max_period=max_period
    )
    return conv_nhwc(channel, kernel[:, :, :1, :], strides, padding, transpose)


def concat_conv_survival(
    kernel: Float[Array, "k k cin features"],
    height: int,
    width: int,
    norm: str,
    groups: int = 32,
    *,
    ts: ArrayLike | None = None,
    shared_t: bool = True,
    **conv_kwargs,
) -> Survival:
    """Exact survival of a `ConcatConv`'s time field across a normalization.

    **Arguments:**

    - `kernel`: the layer's `kernel`, `[k, k, 1 + C_in, F]`, time slice first.
    - `height`, `width`: the layer's input size.
    - `norm`, `groups`: the normalization right after the layer.
    - `ts`: times, `[T]`; 16 points on [0, 1] by default.
    - `shared_t`: all samples share `t` (true inside an ODE solve).
    - `conv_kwargs`: `strides`, `padding`, `transpose`, `time_input`,
      `time_scale`, `max_period` as in `ConcatConv`.

    **Returns:** `Survival`, with the border share of what survives.

    >>> import jax
    >>> kernel = jax.random.normal(jax.random.key(0), (3, 3, 5, 64))
    >>> s = concat_conv_survival(kernel, 6, 6, "instance")
    >>> 0.0 < s.fraction < 1.0  # only the border pattern survives
    True
    """
    ts = jnp.linspace(0.0, 1.0, 16) if ts is None else ts
    field = concat_conv_time_field(kernel, ts, height, width, **conv_kwargs)
    return field_survival(field, norm, groups, shared_t=shared_t, border_margin=1)


def offset_time_field(
    kernel: Float[Array, "embed channels"],
    bias: Float[Array, " channels"],
    emb: Float[Array, "times embed"],
    height: int,
    width: int,
    *,
    positional: bool = False,
    max_period: float = 100.0,
) -> Float[Array, "times height width channels"]:
    """The offset field `tau(t)` of an additive block, on a grid of times.

    `tau = emb @ kernel + bias`, broadcast over the pixels, and multiplied by
    `(1 + P)` under the positional remedy.
    """
    tau = emb @ kernel + bias  # [T, E] @ [E, C] -> [T, C]
    field = jnp.broadcast_to(
        tau[:, None, None, :], (tau.shape[0], height, width, tau.shape[1])
    )
    if positional:
        field = field * (
            1.0 + positional_pattern(height, width, tau.shape[1], max_period)
        )
    return field


def offset_survival(
    kernel: Float[Array, "embed channels"],
    bias: Float[Array, " channels"],
    emb: Float[Array, "times embed"],
    height: int,
    width: int,
    norm: str,
    groups: int = 32,
    *,
    positional: bool = False,
    shared_t: bool = False,
    max_period: float = 100.0,
) -> Survival:
    """Exact survival of an additive block's offsets across a normalization.

    `emb` is the activated embedding that the block receives for each time of
    a grid, `[T, E]`; `kernel`, `bias` the time projection's parameters.
    Diffusion gives every sample its own `t`, hence `shared_t=False`.
    """
    field = offset_time_field(
        kernel, bias, emb, height, width, positional=positional, max_period=max_period
    )
    return field_survival(field, norm, groups, shared_t=shared_t)
