"""Flax building blocks for time-dependent networks, with the remedies.

- `sinusoidal_embedding`, `TimestepEmbedding`: timestep embeddings.
- `ConcatConv`: torchdiffeq's concatenated-time convolution (R1, R2 options).
- `TimeConditionedNorm`: additive, positional, bias-init, scale-shift and
  add-after-norm conditioning around a normalization.
- `Norm`, `make_norm`: batch, group, layer, instance or no normalization.
"""

from timeaware_jax.nn.concat_conv import (
    POSITIONAL_TIME_SCALE,
    TIME_INPUTS,
    ConcatConv,
    batch_times,
    conv_nhwc,
    im2col_conv,
    time_channel,
    torch_uniform_init,
)
from timeaware_jax.nn.conditioning import (
    CONDITIONINGS,
    TimeConditionedNorm,
    check_conditioning,
    operand_bias_init,
    positional_pattern,
)
from timeaware_jax.nn.embedding import (
    TimestepEmbedding,
    geometric_frequencies,
    sinusoidal_embedding,
)
from timeaware_jax.nn.norm import (
    NORMS,
    Norm,
    check_norm,
    make_norm,
    normalize,
    num_groups,
)

__all__ = [
    "CONDITIONINGS",
    "NORMS",
    "POSITIONAL_TIME_SCALE",
    "TIME_INPUTS",
    "ConcatConv",
    "Norm",
    "TimeConditionedNorm",
    "TimestepEmbedding",
    "batch_times",
    "check_conditioning",
    "check_norm",
    "conv_nhwc",
    "geometric_frequencies",
    "im2col_conv",
    "make_norm",
    "normalize",
    "num_groups",
    "operand_bias_init",
    "positional_pattern",
    "sinusoidal_embedding",
    "time_channel",
    "torch_uniform_init",
]
