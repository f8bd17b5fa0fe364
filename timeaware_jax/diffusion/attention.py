"""The single-head spatial self-attention block of the DDPM U-Net.

    h   = GroupNorm(x)
    q, k, v = W_q h, W_k h, W_v h                 (1x1 projections, with bias)
    A   = softmax(q k^T / sqrt(C))                over the H W positions
    out = x + W_o (A v)                           (W_o initialised to zero)

Four C x C projections with biases and one GroupNorm: `4 C^2 + 6 C` parameters,
as in Ho et al.'s reference model.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from timeaware_jax.nn import Norm


class AttentionBlock(nn.Module):
    """Residual self-attention over all pixels of a feature map.

    `__call__(x)` with `x` [B, H, W, C] returns [B, H, W, C].

    **Arguments:**

    - `groups`: GroupNorm groups (must divide C).
    - `dtype`: computation dtype of the projections (e.g. `jnp.bfloat16`);
      the softmax runs in float32.
    """

    groups: int = 32
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, x: Float[Array, "batch height width channels"]
    ) -> Float[Array, "batch height width channels"]:
        batch, height, width, channels = x.shape
        init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
        h = Norm(kind="group", groups=self.groups, name="norm")(x)

        def project(name: str, kernel_init=init) -> Array:
            dense = nn.Dense(
                channels, kernel_init=kernel_init, dtype=self.dtype, name=name
            )
            return dense(h).reshape(batch, height * width, channels)  # -> [B, HW, C]

        q, k, v = project("q"), project("k"), project("v")
        logits = jnp.einsum("bic,bjc->bij", q, k).astype(jnp.float32)
        weights = jax.nn.softmax(logits * channels**-0.5, axis=-1)  # [B, HW, HW]
        h = jnp.einsum("bij,bjc->bic", weights.astype(v.dtype), v)
        h = h.reshape(batch, height, width, channels)  # [B, HW, C] -> [B, H, W, C]
        h = nn.Dense(
            channels,
            kernel_init=nn.initializers.zeros,
            dtype=self.dtype,
            name="proj_out",
        )(h)
        return x + h
