"""The ODE-Net vector field: torchdiffeq's `ODEfunc` with the remedies.

    f(t, y) = norm3(conv2(t, relu(norm2(conv1(t, relu(norm1(y)))))))

`conv1`, `conv2` are `ConcatConv`s (3x3, stride 1, zero padding 1) that see `t`
as an extra input channel (computed by im2col on the CPU, see
`timeaware_jax.nn.im2col_conv`), and
every norm is the same kind (BatchNorm, GroupNorm, LayerNorm or InstanceNorm).
This is the block where the time signal vanishes: the time channel reaches
`norm2` and `norm3` as a per-channel offset (plus a border pattern), and the
norm subtracts it again.

The `conditioning` argument picks how `t` enters (`timeaware_jax.nn`):

| conditioning | time input of the convs | what follows each conv |
| --- | --- | --- |
| `additive` (baseline) | constant channel filled with `t` | norm |
| `positional` (R1) | sinusoid of `t`, one frequency per pixel | norm |
| `bias_init` (R2) | constant channel; operand bias 0, `time_bias` | norm |
| `scale_shift` (R4) | none | `norm(h) * (1 + s) + b` from an MLP of `t` |
| `add_after_norm` (R4) | none | `norm(h) + tau` from an MLP of `t` |

R3 (fewer groups) is the `groups` argument.

The module also `sow`s the tensors around each norm into the `intermediates`
collection (`conv1`, `norm2`, `conv2`, `norm3`), so that the time-variance
ratio before and after a normalization can be probed from outside.
"""

import flax.linen as nn
from jaxtyping import Array, ArrayLike, Float

from timeaware_jax.nn import (
    ConcatConv,
    Norm,
    TimeConditionedNorm,
    TimestepEmbedding,
    batch_times,
    check_conditioning,
    check_norm,
)

# Conditionings applied after the convolution through `TimeConditionedNorm`.
_AFTER_NORM = ("scale_shift", "add_after_norm")


def check_vector_field_args(conditioning: str, norm: str, groups: int) -> None:
    """Raise `ValueError` for an unknown conditioning or norm, or bad `groups`.

    Example:
        >>> check_vector_field_args("additive", "group", 32)
    """
    check_conditioning(conditioning)
    check_norm(norm, groups)
    if norm == "none":
        raise ValueError(
            "norm='none' has no statistics to cancel the time signal and is not "
            "an ODE-Net choice; pick one of ('batch', 'group', 'layer', 'instance')."
        )


class ODEFunc(nn.Module):
    """torchdiffeq's ODE-Net vector field `f(t, y)` with a choice of remedy.

    `__call__(t, y, *, train=False)`: `t` a scalar shared by the whole batch
    (the solver's time, in [0, 1] for the ODE block), `y` of shape
    `[B, H, W, features]`. Returns `dy/dt` of the same shape.

    **Arguments:**

    - `features`: channels of `y` (64 in torchdiffeq).
    - `norm`, `groups`: the normalization after each conv (`timeaware_jax.nn.Norm`).
    - `conditioning`: one of `CONDITIONINGS` (module docstring table).
    - `time_bias`: the initial time-branch bias of R2 (`bias_init`).
    - `embed_scale`: multiplies `t` before the sinusoidal embedding of the R4
      conditionings: angles up to 10 rad over [0, 1] keep f smooth in `t`
      (DDPM's 1000 would make the solver resolve fast oscillations).

    Warning:
        With `norm="batch"` and `train=True` each call normalizes with the
        statistics of its own batch and writes new running averages to
        `batch_stats`; `ODEBlock` decides which of those updates to keep.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = ODEFunc(features=8, groups=4)
        >>> y = jnp.zeros((2, 6, 6, 8))
        >>> variables = f.init(jax.random.key(0), 0.5, y)
        >>> f.apply(variables, 0.5, y).shape
        (2, 6, 6, 8)
    """

    features: int = 64
    norm: str = "group"
    groups: int = 32
    conditioning: str = "additive"
    time_bias: float = 1.0
    embed_scale: float = 10.0

    @nn.compact
    def __call__(
        self,
        t: ArrayLike,
        y: Float[Array, "batch height width channels"],
        *,
        train: bool = False,
    ) -> Float[Array, "batch height width channels"]:
        check_vector_field_args(self.conditioning, self.norm, self.groups)
        if y.ndim != 4 or y.shape[-1] != self.features:
            raise ValueError(
                f"y must have shape [B, H, W, {self.features}], got shape {y.shape}."
            )
        emb = self._embedding(t, y.shape[0])

        h = Norm(self.norm, self.groups, name="norm1")(y, train=train)
        h = nn.relu(h)
        h = self._conv_norm(t, h, emb, index=2, train=train)
        h = nn.relu(h)
        return self._conv_norm(t, h, emb, index=3, train=train)

    def _embedding(self, t: ArrayLike, batch: int) -> Array | None:
        if self.conditioning not in _AFTER_NORM:
            return None
        t = batch_times(t, batch)  # the shared scalar -> [B]
        emb = TimestepEmbedding(
            self.features,
            hidden_dim=self.features,
            scale=self.embed_scale,
            name="time_embed",
        )(t)
        return nn.swish(emb)

    def _conv_norm(self, t, h, emb, *, index: int, train: bool) -> Array:
        conv_index = index - 1
        time_input = {"positional": "positional"}.get(self.conditioning, "constant")
        if self.conditioning in _AFTER_NORM:
            time_input = "none"
        time_bias = self.time_bias if self.conditioning == "bias_init" else None
        h = ConcatConv(
            self.features,
            time_input=time_input,
            time_bias=time_bias,
            name=f"conv{conv_index}",
        )(t, h)
        self.sow("intermediates", f"conv{conv_index}", h)

        if self.conditioning in _AFTER_NORM:
            h = TimeConditionedNorm(
                self.conditioning, self.norm, self.groups, name=f"norm{index}"
            )(h, emb, train=train)
        else:
            h = Norm(self.norm, self.groups, name=f"norm{index}")(h, train=train)
        self.sow("intermediates", f"norm{index}", h)
        return h
