"""Sinusoidal timestep embeddings and the embedding MLP.

The DDPM convention: for `d = dim // 2` frequencies spread geometrically between
1 and `1 / max_period`,

    freqs[k] = max_period ** (-k / d),            k = 0, ..., d - 1
    emb(t)   = [sin(scale * t * freqs), cos(scale * t * freqs)]

`t` is whatever the model calls time: an integer step in [0, T) for DDPM, a
continuous time in [0, 1] for a neural ODE. With `t` in [0, 1] and
`max_period = 10000`, most frequencies barely turn and the embedding is nearly
constant; raise `scale` (for example to 1000) to spread it.
"""

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def geometric_frequencies(num: int, max_period: float) -> Float[Array, " num"]:
    """Frequencies `max_period ** (-k / num)` for `k = 0, ..., num - 1`."""
    if num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}.")
    if max_period <= 1.0:
        raise ValueError(f"max_period must be greater than 1, got {max_period!r}.")
    exponents = jnp.arange(num, dtype=jnp.float32) / num
    return jnp.exp(-jnp.log(max_period) * exponents)


def sinusoidal_embedding(
    t: ArrayLike,
    dim: int,
    *,
    scale: float = 1.0,
    max_period: float = 10000.0,
) -> Float[Array, "batch dim"]:
    """Sinusoidal embedding of times `t`, first half sines, second half cosines.

    **Arguments:**

    - `t`: times, shape `[B]` (a scalar is treated as `[1]`).
    - `dim`: embedding width; must be even and at least 2.
    - `scale`: `t` is multiplied by it before the sinusoids.
    - `max_period`: the longest period, in units of `scale * t`.

    **Returns:** `[B, dim]` float32.

    **Raises:** `ValueError` if `dim` is odd or below 2, or `t` has rank above 1.

    >>> sinusoidal_embedding(jnp.array([0.0, 1.0]), 4).shape
    (2, 4)
    """
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even integer >= 2, got {dim!r}.")
    t = jnp.asarray(t, dtype=jnp.float32)
    if t.ndim > 1:
        raise ValueError(f"t must be a scalar or have shape [B], got shape {t.shape}.")
    t = jnp.atleast_1d(t)
    freqs = geometric_frequencies(dim // 2, max_period)
    angles = scale * t[:, None] * freqs[None, :]  # [B, dim // 2]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class TimestepEmbedding(nn.Module):
    """The DDPM embedding MLP: sinusoid, Dense, swish, Dense.

    `__call__(t)` maps `t` of shape `[B]` (or a scalar) to `[B, hidden_dim]`.

    **Arguments:**

    - `dim`: width of the sinusoidal embedding.
    - `hidden_dim`: width of both Dense layers; `4 * dim` when `None`.
    - `scale`, `max_period`: as in `sinusoidal_embedding`.
    """

    dim: int
    hidden_dim: int | None = None
    scale: float = 1.0
    max_period: float = 10000.0

    @nn.compact
    def __call__(self, t: ArrayLike) -> Float[Array, "batch hidden"]:
        hidden = self.hidden_dim or 4 * self.dim
        emb = sinusoidal_embedding(
            t, self.dim, scale=self.scale, max_period=self.max_period
        )
        emb = nn.Dense(hidden, name="dense_0")(emb)
        emb = nn.swish(emb)
        return nn.Dense(hidden, name="dense_1")(emb)
