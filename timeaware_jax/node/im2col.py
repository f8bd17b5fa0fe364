"""`ConcatConv` with an im2col convolution, for vector fields on the CPU.

Inside an ODE solve the vector field runs in a `while` loop, and so does its
VJP. XLA's CPU backend computes the *kernel* gradient of a convolution inside
a loop body through a slow generic path: on 2 cores, 20 Euler steps of a
3x3, 32-channel convolution on a `[64, 8, 8, 32]` state take about 3.7 s to
differentiate, against 0.07 s when the same steps are unrolled. Written as
patches times a matrix (im2col), the kernel gradient is a plain matrix
product and the same loop takes about 0.26 s.

`Im2colConcatConv` is a `ConcatConv` (same arguments, same parameters, same
time channel; `isinstance` checks in `timeaware_jax.analysis` still see it)
that switches to im2col on the CPU backend for stride-1, non-transposed
convolutions, and keeps XLA's convolution everywhere else (GPU and TPU
convolutions are fast in loops).

    conv(x, K)[n, i, j, o] = sum_{a, b, c} pad(x)[n, i + a, j + b, c] K[a, b, c, o]
                           = patches(x)[n, i, j, :] @ K.reshape(k * k * C, O)
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from timeaware_jax.nn import (
    TIME_INPUTS,
    ConcatConv,
    batch_times,
    conv_nhwc,
    time_channel,
    torch_uniform_init,
)


def im2col_conv(
    x: Float[Array, "batch height width cin"],
    kernel: Float[Array, "k k cin cout"],
    padding: int,
) -> Float[Array, "batch height2 width2 cout"]:
    """Stride-1 cross-correlation with zero padding, as patches times a matrix.

    Equal to `timeaware_jax.nn.conv_nhwc(x, kernel, 1, padding, False)`.

    Example:
        >>> x, kernel = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 5))
        >>> im2col_conv(x, kernel, 1).shape
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


class Im2colConcatConv(ConcatConv):
    """`ConcatConv` whose stride-1 convolution is im2col on the CPU backend.

    Same arguments, parameters and outputs as `timeaware_jax.nn.ConcatConv`
    (see there): the time channel is built by `nn.time_channel` and put in
    front of the features, parameters `kernel`, `bias` and (R2) `time_bias`
    with the same initializers. Only the convolution routine differs, and
    only on the CPU.

    Example:
        >>> import jax
        >>> layer = Im2colConcatConv(features=4)
        >>> x = jnp.zeros((2, 6, 6, 3))
        >>> params = layer.init(jax.random.key(0), 0.5, x)
        >>> layer.apply(params, 0.5, x).shape
        (2, 6, 6, 4)
    """

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
        b, h, w, _ = x.shape
        if self.time_input != "none":
            tt = time_channel(
                batch_times(t, b),
                h,
                w,
                self.time_input,
                time_scale=self.time_scale,
                max_period=self.max_period,
            )
            x = jnp.concatenate([tt.astype(x.dtype), x], axis=-1)

        k, cin = self.kernel_size, x.shape[-1]
        fan_in = cin * k**2
        kernel = self.param(
            "kernel", torch_uniform_init(fan_in), (k, k, cin, self.features)
        )
        use_im2col = (
            jax.default_backend() == "cpu" and self.strides == 1 and not self.transpose
        )
        if use_im2col:
            y = im2col_conv(x, kernel, self.padding)
        else:
            y = conv_nhwc(x, kernel, self.strides, self.padding, self.transpose)

        r2 = self.time_bias is not None
        if self.use_bias:
            bias_init = nn.initializers.zeros if r2 else torch_uniform_init(fan_in)
            y = y + self.param("bias", bias_init, (self.features,))
        if r2:
            time_init = nn.initializers.constant(self.time_bias)
            y = y + self.param("time_bias", time_init, (self.features,))
        return y
