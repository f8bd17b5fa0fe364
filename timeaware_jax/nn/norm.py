"""The normalization factory: batch, group, layer, instance or none.

Every choice normalizes NHWC features `x` of shape `[B, H, W, C]` over its
*statistics set* (see DESIGN.md): BatchNorm over `(B, H, W)` per channel,
GroupNorm over `(H, W)` and the `m = C / G` channels of a group, LayerNorm over
`(H, W, C)` (GroupNorm with one group), InstanceNorm over `(H, W)` per channel
(GroupNorm with `G = C`). All four then apply a learned per-channel scale and
bias.
"""

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

NORMS = ("batch", "group", "layer", "instance", "none")


def check_norm(kind: str, groups: int | None = None) -> None:
    """Raise `ValueError` unless `kind` is a known norm and `groups` is positive."""
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {kind!r}.")
    if kind == "group" and (not isinstance(groups, int) or groups < 1):
        raise ValueError(f"groups must be a positive integer, got {groups!r}.")


def num_groups(kind: str, groups: int, channels: int) -> int | None:
    """Number of groups that `kind` uses on `channels` channels.

    `None` for BatchNorm and no norm, which have no groups.

    **Raises:** `ValueError` when GroupNorm's `groups` does not divide `channels`.
    """
    check_norm(kind, groups)
    if kind == "group":
        if channels % groups:
            divisors = [g for g in range(1, channels + 1) if channels % g == 0]
            raise ValueError(
                f"groups must divide the number of channels {channels}, got "
                f"groups={groups}; valid values: {divisors}."
            )
        return groups
    return {"layer": 1, "instance": channels}.get(kind)


class Norm(nn.Module):
    """A normalization layer chosen by name.

    `__call__(x, train=False)` takes `x` of shape `[B, H, W, C]` (or `[B, C]`
    for BatchNorm and no norm). BatchNorm keeps running averages in the
    `batch_stats` collection: with `train=True` it normalizes with the batch's
    own statistics and updates the averages (apply with
    `mutable=["batch_stats"]`); with `train=False` it uses the averages.

    **Arguments:**

    - `kind`: one of `NORMS`.
    - `groups`: the number of GroupNorm groups (ignored by the other kinds).
    - `momentum`, `epsilon`: as in `flax.linen.BatchNorm`; `epsilon` for all.
    - `use_scale`, `use_bias`: learn the per-channel affine map.
    """

    kind: str = "group"
    groups: int = 32
    momentum: float = 0.9
    epsilon: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: Float[Array, "..."], *, train: bool = False) -> Array:
        check_norm(self.kind, self.groups)
        if self.kind == "none":
            return x
        affine = dict(use_scale=self.use_scale, use_bias=self.use_bias)
        if self.kind == "batch":
            return nn.BatchNorm(
                use_running_average=not train,
                momentum=self.momentum,
                epsilon=self.epsilon,
                name="batch_norm",
                **affine,
            )(x)
        if x.ndim != 4:
            raise ValueError(
                f"x must have shape [B, H, W, C] for {self.kind} norm, "
                f"got shape {x.shape}."
            )
        groups = num_groups(self.kind, self.groups, x.shape[-1])
        return nn.GroupNorm(
            num_groups=groups, epsilon=self.epsilon, name="group_norm", **affine
        )(x)


def make_norm(kind: str, groups: int = 32, **kwargs) -> Norm:
    """Validate `kind` and `groups` and return the matching `Norm`.

    >>> make_norm("group", 8).groups
    8
    """
    check_norm(kind, groups)
    return Norm(kind=kind, groups=groups, **kwargs)


def normalize(
    x: Float[Array, "batch height width channels"],
    kind: str,
    groups: int = 32,
    epsilon: float = 1e-5,
) -> Float[Array, "batch height width channels"]:
    """Parameter-free normalization over the statistics set of `kind`.

    BatchNorm in training mode normalizes over `(B, H, W)`; the others as in
    `Norm`. Used by the analysis to predict what a layer removes.
    """
    check_norm(kind, groups)
    if kind == "none":
        return x
    if kind == "batch":
        mean = jnp.mean(x, axis=(0, 1, 2), keepdims=True)
        var = jnp.var(x, axis=(0, 1, 2), keepdims=True)
        return (x - mean) / jnp.sqrt(var + epsilon)
    b, h, w, c = x.shape
    g = num_groups(kind, groups, c)
    xg = x.reshape(b, h, w, g, c // g)  # [B, H, W, C] -> [B, H, W, G, m]
    mean = jnp.mean(xg, axis=(1, 2, 4), keepdims=True)
    var = jnp.var(xg, axis=(1, 2, 4), keepdims=True)
    return ((xg - mean) / jnp.sqrt(var + epsilon)).reshape(b, h, w, c)
