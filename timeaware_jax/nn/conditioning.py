"""Time conditioning around a normalization layer, with the remedies.

A DDPM ResBlock adds a projected timestep embedding to its features and
normalizes right after: `norm(h + tau)` with `tau = Dense(emb)` constant over
pixels. The normalization subtracts the mean of `tau` over its statistics set,
which is how the time signal vanishes. `TimeConditionedNorm` implements that
baseline and the remedies as one argument, `conditioning`:

| conditioning     | output                                  | remedy          |
| ---------------- | --------------------------------------- | --------------- |
| `additive`       | `norm(h + tau)`                         | baseline (DDPM) |
| `positional`     | `norm(h + tau * (1 + P))`               | R1              |
| `bias_init`      | `norm(h + tau)`, biases re-initialized  | R2              |
| `scale_shift`    | `norm(h) * (1 + s) + b`                 | R4 (AdaGN)      |
| `add_after_norm` | `norm(h) + tau`                         | R4, plain       |

Under R2 the bias of `tau` starts at `time_bias` and the operand's at zero
(`operand_bias_init`); under R4 `(s, b) = Dense_2C(emb)`.
`P` is a fixed `[H, W, C]` pattern with zero mean and unit RMS over the pixels
of every channel (`positional_pattern`); `tau * P` varies within every
statistics set, so centering cannot remove it. R3, fewer groups, is the
`groups` argument.
"""

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from timeaware_jax.nn.concat_conv import torch_uniform_init
from timeaware_jax.nn.embedding import geometric_frequencies
from timeaware_jax.nn.norm import Norm, check_norm

CONDITIONINGS = (
    "additive",
    "positional",
    "bias_init",
    "scale_shift",
    "add_after_norm",
)


def check_conditioning(conditioning: str) -> None:
    """Raise `ValueError` unless `conditioning` is one of `CONDITIONINGS`."""
    if conditioning not in CONDITIONINGS:
        raise ValueError(
            f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}."
        )


def operand_bias_init(conditioning: str, fan_in: int):
    """Bias initializer of the layer that produces the operand `h`.

    Zeros under R2 (`"bias_init"`), PyTorch's default uniform otherwise, so that
    baselines start where their PyTorch references start.
    """
    check_conditioning(conditioning)
    if conditioning == "bias_init":
        return nn.initializers.zeros
    return torch_uniform_init(fan_in)


def positional_pattern(
    height: int, width: int, channels: int, max_period: float = 100.0
) -> Float[Array, "height width channels"]:
    """A fixed per-channel spatial pattern with zero mean and unit RMS per channel.

    Pixel `k` (row-major) of channel `c` holds `sin((c + 1) * omega_k + phi_k)`
    with `omega_k = max_period ** (-k / (H W))` and `phi_k` alternating
    `0, pi / 2`; each channel is then centered and scaled to unit RMS over its
    pixels. On a single pixel no zero-mean pattern exists and `P = 0`.
    """
    num = height * width
    if num == 1:
        return jnp.zeros((1, 1, channels))
    omega = geometric_frequencies(num, max_period)
    phase = (jnp.arange(num) % 2) * (jnp.pi / 2)
    c = jnp.arange(1, channels + 1, dtype=jnp.float32)
    field = jnp.sin(c[None, :] * omega[:, None] + phase[:, None])  # [H*W, C]
    field = field - jnp.mean(field, axis=0, keepdims=True)
    field = field / jnp.sqrt(jnp.mean(field**2, axis=0, keepdims=True) + 1e-12)
    return field.reshape(height, width, channels)  # [H*W, C] -> [H, W, C]


class TimeConditionedNorm(nn.Module):
    """Inject an embedding into features around a normalization layer.

    `__call__(h, emb, train=False)`: `h` has shape `[B, H, W, C]`, `emb` shape
    `[B, E]` and is already activated (DDPM passes `swish(temb)`). Returns
    `[B, H, W, C]`. The time projection is the submodule `time_proj`, the
    normalization `norm`. Table of choices in the module docstring.

    **Arguments:**

    - `conditioning`: one of `CONDITIONINGS`.
    - `norm`, `groups`: the normalization (see `Norm`).
    - `time_bias`: initial bias of `time_proj` under R2.
    - `max_period`: of the positional pattern under R1.

    **Raises:** `ValueError` for an unknown choice, `h` not of rank 4, or an
    `emb` whose batch size differs from `h`'s.
    """

    conditioning: str = "additive"
    norm: str = "group"
    groups: int = 32
    time_bias: float = 1.0
    max_period: float = 100.0

    @nn.compact
    def __call__(
        self,
        h: Float[Array, "batch height width channels"],
        emb: Float[Array, "batch embed"],
        *,
        train: bool = False,
    ) -> Float[Array, "batch height width channels"]:
        check_conditioning(self.conditioning)
        check_norm(self.norm, self.groups)
        if h.ndim != 4:
            raise ValueError(f"h must have shape [B, H, W, C], got shape {h.shape}.")
        if emb.ndim != 2 or emb.shape[0] != h.shape[0]:
            raise ValueError(
                f"emb must have shape [B, E] with B = {h.shape[0]}, "
                f"got shape {emb.shape}."
            )
        _, height, width, c = h.shape
        norm = Norm(kind=self.norm, groups=self.groups, name="norm")

        if self.conditioning == "scale_shift":
            scale_shift = nn.Dense(2 * c, name="time_proj")(emb)[:, None, None, :]
            scale, shift = jnp.split(scale_shift, 2, axis=-1)
            return norm(h, train=train) * (1.0 + scale) + shift

        bias_init = (
            nn.initializers.constant(self.time_bias)
            if self.conditioning == "bias_init"
            else nn.initializers.zeros
        )
        tau = nn.Dense(c, bias_init=bias_init, name="time_proj")(emb)
        tau = tau[:, None, None, :]  # [B, C] -> [B, 1, 1, C]

        if self.conditioning == "add_after_norm":
            return norm(h, train=train) + tau
        if self.conditioning == "positional":
            pattern = positional_pattern(height, width, c, self.max_period)
            tau = tau * (1.0 + pattern[None].astype(tau.dtype))
        return norm(h + tau, train=train)
