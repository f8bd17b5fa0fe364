"""`ConcatConv`: a convolution that sees time as an extra input channel.

torchdiffeq's `ConcatConv2d` fills one channel with `t`, puts it in front of
the features and applies an ordinary convolution with zero padding:

    out = conv([t * 1, h]) = conv_h(h) + t * K(p) + bias

where `K(p)` sums the time slice of the kernel over the taps that land inside
the image at pixel `p`. In the interior `K(p)` is the same for every pixel, so a
following normalization removes most of it; only the border pattern and any
spread between channels of a group survive (see DESIGN.md).

The time channel can instead hold a *positional* embedding of `t` (remedy R1):
pixel `k` (row-major) carries `sin(omega_k * s * t + phi_k)` with frequencies
`omega_k = max_period ** (-k / (H * W))` and phases alternating `0, pi / 2`.
This field varies over the pixels of one image, so centering over a
normalization's statistics set cannot remove it.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from timeaware_jax.nn.embedding import geometric_frequencies

TIME_INPUTS = ("constant", "positional", "none")

# One full period of the fastest pixel over t in [0, 1]: the positional field's
# time-varying energy then matches the constant channel's (about 0.1 against
# 1/12), and the field stays smooth enough for an adaptive ODE solver.
POSITIONAL_TIME_SCALE = 2 * math.pi


def torch_uniform_init(fan_in: int) -> jax.nn.initializers.Initializer:
    """PyTorch's default initializer for conv and linear layers.

    `U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))`, used for both kernel and bias so
    that a baseline here starts from the distribution torchdiffeq starts from.
    """
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def batch_times(t: ArrayLike, batch: int) -> Float[Array, " batch"]:
    """Broadcast `t` (a scalar or `[B]`) to shape `[B]`.

    **Raises:** `ValueError` when `t` is neither a scalar nor of shape `[batch]`.
    """
    t = jnp.asarray(t, dtype=jnp.float32)
    if t.ndim == 0:
        return jnp.full((batch,), t)
    if t.shape != (batch,):
        raise ValueError(
            f"t must be a scalar or have shape [B] = ({batch},), got shape {t.shape}."
        )
    return t


def time_channel(
    t: Float[Array, " batch"],
    height: int,
    width: int,
    time_input: str,
    *,
    time_scale: float = POSITIONAL_TIME_SCALE,
    max_period: float = 100.0,
) -> Float[Array, "batch height width 1"]:
    """The time channel that `ConcatConv` concatenates in front of the features.

    `"constant"` fills it with `t`; `"positional"` lays a sinusoid of `t` with
    one geometric frequency per pixel over the grid (module docstring).
    """
    if time_input == "constant":
        return jnp.broadcast_to(t[:, None, None, None], (t.shape[0], height, width, 1))
    if time_input != "positional":
        raise ValueError(
            f"time_input must be 'constant' or 'positional' here, got {time_input!r}."
        )
    num = height * width
    omega = geometric_frequencies(num, max_period) if num > 1 else jnp.ones((1,))
    phase = (jnp.arange(num) % 2) * (jnp.pi / 2)
    field = jnp.sin(time_scale * t[:, None] * omega[None, :] + phase)  # [B, H*W]
    return field.reshape(t.shape[0], height, width, 1)  # [B, H*W] -> [B, H, W, 1]


def im2col_conv(
    x: Float[Array, "batch height width cin"],
    kernel: Float[Array, "k k cin cout"],
    padding: int,
) -> Float[Array, "batch height2 width2 cout"]:
    """Stride-1 cross-correlation with zero padding, as patches times a matrix.

        conv(x, K)[n, i, j, o] = sum_{a, b, c} pad(x)[n, i + a, j + b, c] K[a, b, c, o]
                               = patches(x)[n, i, j, :] @ K.reshape(k * k * C, O)

    Inside an ODE solve the vector field and its VJP run in a `while` loop,
    where XLA's CPU backend computes a convolution's kernel gradient through a
    slow generic path (about 50 times slower than unrolled on 2 cores); as a
    matrix product it is fast. GPU and TPU convolutions are fast in loops, so
    `conv_nhwc` uses this only on the CPU.

    >>> im2col_conv(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5)), 1).shape
    (1, 4, 4, 5)
    """
    k = kernel.shape[0]
    padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    height = padded.shape[1] - k + 1
    width = padded.shape[2] - k + 1
    taps = [
        padded[:, a : a + height, b : b + width, :] for a in range(k) for b in range(k)
    ]
    patches = jnp.concatenate(taps, axis=-1)  # [B, H', W', k*k*C], (a, b, c) order
    matrix = kernel.reshape(-1, kernel.shape[-1])  # [k, k, C, O] -> [k*k*C, O]
    return patches @ matrix


def conv_nhwc(
    x: Float[Array, "batch height width cin"],
    kernel: Float[Array, "k k cin cout"],
    strides: int,
    padding: int,
    transpose: bool,
) -> Float[Array, "batch height2 width2 cout"]:
    """Cross-correlation with PyTorch's padding, or PyTorch's transposed conv.

    The transposed convolution matches `torch.nn.ConvTranspose2d` with weight
    `kernel.transpose(2, 3, 0, 1)`: output size `(H - 1) * s - 2 p + k`.
    On the CPU backend, stride-1 convolutions go through `im2col_conv`.
    """
    dims = ("NHWC", "HWIO", "NHWC")
    if not transpose and strides == 1 and jax.default_backend() == "cpu":
        return im2col_conv(x, kernel, padding)
    if not transpose:
        pads = [(padding, padding)] * 2
        return jax.lax.conv_general_dilated(
            x, kernel, (strides, strides), pads, dimension_numbers=dims
        )
    k = kernel.shape[0]
    pads = [(k - 1 - padding, k - 1 - padding)] * 2
    return jax.lax.conv_general_dilated(
        x,
        kernel[::-1, ::-1],
        (1, 1),
        pads,
        lhs_dilation=(strides, strides),
        dimension_numbers=dims,
    )


class ConcatConv(nn.Module):
    """A convolution over `[time channel, features]`, torchdiffeq's `ConcatConv2d`.

    `__call__(t, x)`: `t` is a scalar (one time for the whole batch, as inside an
    ODE solve) or of shape `[B]`; `x` has shape `[B, H, W, C]`. Returns
    `[B, H', W', features]` with `H' = (H + 2 p - k) // s + 1`, or
    `(H - 1) * s - 2 p + k` when `transpose`.

    Parameters: `kernel` `[k, k, 1 + C, features]` whose input slice 0 is the
    time channel (`[k, k, C, features]` when `time_input="none"`), `bias`
    `[features]`, and with remedy R2 also `time_bias` `[features]`.

    **Arguments:**

    - `features`: output channels.
    - `kernel_size`, `strides`, `padding`: as in PyTorch (zero padding).
    - `transpose`: a transposed convolution, as `ConvTranspose2d`.
    - `use_bias`: learn the operand bias.
    - `time_input`: `"constant"` (baseline), `"positional"` (R1) or `"none"`
      (no time channel, for conditioning after the norm).
    - `time_bias`: `None` for the baseline. A float selects R2: the operand
      bias starts at zero and a separate `time_bias` starts at this value.
    - `time_scale`, `max_period`: the positional field's time scale (`2 pi`:
      the fastest pixel turns once over `t` in [0, 1]) and longest period.

    **Raises:** `ValueError` for an unknown `time_input`, an `x` that is not
    rank 4, or a `t` of the wrong shape.

    >>> layer = ConcatConv(features=4)
    >>> x = jnp.zeros((2, 6, 6, 3))
    >>> params = layer.init(jax.random.key(0), 0.5, x)
    >>> layer.apply(params, 0.5, x).shape
    (2, 6, 6, 4)
    """

    features: int
    kernel_size: int = 3
    strides: int = 1
    padding: int = 1
    transpose: bool = False
    use_bias: bool = True
    time_input: str = "constant"
    time_bias: float | None = None
    time_scale: float = POSITIONAL_TIME_SCALE
    max_period: float = 100.0

    @nn.compact
    def __call__(
        self, t: ArrayLike, x: Float[Array, "batch height width channels"]
    ) -> Float[Array, "batch height2 width2 features"]:
        if self.time_input not in TIME_INPUTS:
            raise ValueError(
                f"time_input must be one of {TIME_INPUTS}, got {self.time_input!r}."
            )
        if x.ndim != 4:
            raise ValueError(f"x must have shape [B, H, W, C], got shape {x.shape}.")
        b, h, w, c = x.shape
        t = batch_times(t, b)

        if self.time_input != "none":
            tt = time_channel(
                t,
                h,
                w,
                self.time_input,
                time_scale=self.time_scale,
                max_period=self.max_period,
            )
            x = jnp.concatenate([tt.astype(x.dtype), x], axis=-1)
        cin = x.shape[-1]

        fan_in = cin * self.kernel_size**2
        k = self.kernel_size
        kernel = self.param(
            "kernel", torch_uniform_init(fan_in), (k, k, cin, self.features)
        )
        y = conv_nhwc(x, kernel, self.strides, self.padding, self.transpose)

        if self.use_bias:
            r2 = self.time_bias is not None
            bias_init = nn.initializers.zeros if r2 else torch_uniform_init(fan_in)
            y = y + self.param("bias", bias_init, (self.features,))
        if self.time_bias is not None:
            time_init = nn.initializers.constant(self.time_bias)
            y = y + self.param("time_bias", time_init, (self.features,))
        return y
