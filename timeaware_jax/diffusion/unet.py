"""The DDPM U-Net (Ho et al. 2020) with the time conditioning as an argument.

Structure, for channel multipliers `ch_mult` and `num_res_blocks` blocks per
level:

    temb = Dense(swish(Dense(sinusoid(t, ch))))              [B, 4 ch]
    down: conv_in, then per level num_res_blocks ResBlocks (+ attention at
          `attn_resolutions`), then a stride-2 conv except at the last level
    mid:  ResBlock, attention, ResBlock
    up:   per level num_res_blocks + 1 ResBlocks on [h, skip] (+ attention),
          then nearest upsampling and a conv except at the first level
    out:  conv_out(swish(GroupNorm(h)))                       (zero-initialised)

A ResBlock computes

    h = conv1(swish(GroupNorm(x)))
    h = TimeConditionedNorm(conditioning)(h, swish(temb))     # DDPM: GN(h + Dense(.))
    h = conv2(dropout(swish(h)))                              (zero-initialised)
    return skip(x) + h                                        (1x1 NIN if C changes)

With `conditioning="additive"` this is DDPM's block: the embedding is added
right before GroupNorm, which is where the time signal can vanish. At the
CIFAR-10 configuration (ch 128, ch_mult (1, 2, 2, 2), 2 blocks, attention at
16x16) the model has 35,746,307 parameters, as the reference TensorFlow model.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from timeaware_jax.diffusion.attention import AttentionBlock
from timeaware_jax.nn import (
    Norm,
    TimeConditionedNorm,
    TimestepEmbedding,
    check_conditioning,
    operand_bias_init,
)


def _default_init(scale: float = 1.0) -> nn.initializers.Initializer:
    """DDPM's initializer: variance scaling, fan_avg, uniform (0 scale -> zeros)."""
    if scale == 0.0:
        return nn.initializers.zeros
    return nn.initializers.variance_scaling(scale, "fan_avg", "uniform")


class ResBlock(nn.Module):
    """The DDPM residual block with time conditioning around its second norm.

    `__call__(x [B, H, W, C_in], emb [B, E], *, train)` -> [B, H, W, out_channels];
    `emb` is the timestep embedding before the activation.
    """

    out_channels: int
    conditioning: str = "additive"
    groups: int = 32
    time_bias: float = 1.0
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "batch height width c_in"],
        emb: Float[Array, "batch embed"],
        *,
        train: bool = False,
    ) -> Float[Array, "batch height width c_out"]:
        c_in = x.shape[-1]
        h = nn.swish(Norm(kind="group", groups=self.groups, name="norm1")(x))
        h = nn.Conv(
            self.out_channels,
            (3, 3),
            padding=1,
            kernel_init=_default_init(),
            bias_init=operand_bias_init(self.conditioning, 9 * c_in),
            dtype=self.dtype,
            name="conv1",
        )(h)
        h = TimeConditionedNorm(
            conditioning=self.conditioning,
            norm="group",
            groups=self.groups,
            time_bias=self.time_bias,
            name="cond_norm2",
        )(h, nn.swish(emb))
        h = nn.Dropout(self.dropout)(nn.swish(h), deterministic=not train)
        h = nn.Conv(
            self.out_channels,
            (3, 3),
            padding=1,
            kernel_init=_default_init(0.0),
            dtype=self.dtype,
            name="conv2",
        )(h)
        if c_in != self.out_channels:
            x = nn.Dense(
                self.out_channels,
                kernel_init=_default_init(),
                dtype=self.dtype,
                name="nin_shortcut",
            )(x)
        return x + h


class UNet(nn.Module):
    """The DDPM noise-prediction U-Net.

    `__call__(x, t, *, train=False)`: `x` [B, H, W, C] images in [-1, 1], `t`
    [B] timestep indices in [0, T) (integers, or reals for the
    probability-flow ODE). Returns [B, H, W, out_channels] in float32. Apply
    with `rngs={"dropout": key}` when `train=True` and `dropout > 0`.

    **Arguments:**

    - `ch`: base channel count; `ch_mult`: multiplier per resolution level.
    - `num_res_blocks`: ResBlocks per level on the way down (one more up).
    - `attn_resolutions`: spatial sizes at which attention blocks are used.
    - `dropout`: dropout rate inside ResBlocks.
    - `groups`: GroupNorm groups everywhere (R3 lowers it).
    - `conditioning`: one of `timeaware_jax.nn.CONDITIONINGS` (baseline
      "additive"); `time_bias`: the time-branch bias under "bias_init".
    - `image_size`, `channels`: the data shape, used by the samplers.
    - `out_channels`: output channels (default `channels`).
    - `dtype`: computation dtype (`jnp.bfloat16` on TPUs); parameters stay
      float32.

    **Raises:** `ValueError` for an unknown conditioning, an image whose size is
    not divisible by `2 ** (len(ch_mult) - 1)`, or `groups` not dividing a
    channel count.

    Example:
        >>> model = UNet(ch=32, ch_mult=(1, 2), attn_resolutions=(4,), groups=8,
        ...              image_size=8, channels=1)
        >>> params = model.init(jr.key(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros(1))
    """

    ch: int = 128
    ch_mult: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (16,)
    dropout: float = 0.1
    groups: int = 32
    conditioning: str = "additive"
    time_bias: float = 1.0
    image_size: int = 32
    channels: int = 3
    out_channels: int | None = None
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: Float[Array, "batch height width channels"],
        t: Float[Array, " batch"],
        *,
        train: bool = False,
    ) -> Float[Array, "batch height width out"]:
        check_conditioning(self.conditioning)
        self._check_input(x)
        emb = TimestepEmbedding(self.ch, 4 * self.ch, name="temb")(t)

        def res_block(h: Array, channels: int, name: str) -> Array:
            return ResBlock(
                channels,
                conditioning=self.conditioning,
                groups=self.groups,
                time_bias=self.time_bias,
                dropout=self.dropout,
                dtype=self.dtype,
                name=name,
            )(h, emb, train=train)

        def attention(h: Array, name: str) -> Array:
            return AttentionBlock(self.groups, self.dtype, name=name)(h)

        def conv(h: Array, channels: int, name: str, scale: float = 1.0) -> Array:
            return nn.Conv(
                channels,
                (3, 3),
                padding=1,
                kernel_init=_default_init(scale),
                dtype=self.dtype,
                name=name,
            )(h)

        # Down.
        hs = [conv(x.astype(self.dtype), self.ch, "conv_in")]
        for level, mult in enumerate(self.ch_mult):
            for block in range(self.num_res_blocks):
                h = res_block(hs[-1], self.ch * mult, f"down_{level}_block_{block}")
                if h.shape[1] in self.attn_resolutions:
                    h = attention(h, f"down_{level}_attn_{block}")
                hs.append(h)
            if level != len(self.ch_mult) - 1:
                hs.append(self._downsample(hs[-1], f"down_{level}_downsample"))

        # Middle.
        h = res_block(hs[-1], hs[-1].shape[-1], "mid_block_1")
        h = attention(h, "mid_attn_1")
        h = res_block(h, h.shape[-1], "mid_block_2")

        # Up.
        for level in reversed(range(len(self.ch_mult))):
            for block in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, hs.pop()], axis=-1)
                h = res_block(
                    h, self.ch * self.ch_mult[level], f"up_{level}_block_{block}"
                )
                if h.shape[1] in self.attn_resolutions:
                    h = attention(h, f"up_{level}_attn_{block}")
            if level != 0:
                batch, height, width, c = h.shape
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest, x2
                h = conv(h, c, f"up_{level}_upsample")

        # Out.
        h = nn.swish(Norm(kind="group", groups=self.groups, name="norm_out")(h))
        out_channels = self.out_channels or self.channels
        return conv(h, out_channels, "conv_out", scale=0.0).astype(jnp.float32)

    def _downsample(self, h: Array, name: str) -> Array:
        return nn.Conv(
            h.shape[-1],
            (3, 3),
            strides=(2, 2),
            padding=1,
            kernel_init=_default_init(),
            dtype=self.dtype,
            name=name,
        )(h)

    def _check_input(self, x: Array) -> None:
        factor = 2 ** (len(self.ch_mult) - 1)
        if x.ndim != 4 or x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"x must have shape [B, H, W, C] with H and W divisible by {factor} "
                f"(2 ** (len(ch_mult) - 1)), got shape {x.shape}."
            )


def count_parameters(params) -> int:
    """The total number of scalars in a parameter pytree (arrays or shape structs)."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))
