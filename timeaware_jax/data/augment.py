"""Image augmentation in JAX and conversion between uint8 and float pixels."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, Shaped, UInt8


def to_float(
    images: UInt8[Array, "*batch"] | UInt8[np.ndarray, "*batch"],
) -> Float[Array, "*batch"]:
    """Map `uint8` pixels in `[0, 255]` to `float32` in `[-1, 1]`.

    x = v / 127.5 - 1

    Args:
        images: `uint8` array of any shape (typically `[B, H, W, C]`).

    Returns:
        `float32` array of the same shape.

    Raises:
        ValueError: if `images` is not `uint8`.

    Example:
        >>> to_float(np.array([0, 255], np.uint8))
        Array([-1.,  1.], dtype=float32)
    """
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}.")
    return jnp.asarray(images, jnp.float32) / 127.5 - 1.0


def to_uint8(x: Float[Array, "*batch"]) -> UInt8[Array, "*batch"]:
    """Map floats in `[-1, 1]` to `uint8` pixels, clipping and rounding.

    v = clip(round((x + 1) * 127.5), 0, 255)

    Args:
        x: float array of any shape.

    Returns:
        `uint8` array of the same shape; the inverse of `to_float` on its
        image.

    Example:
        >>> to_uint8(jnp.array([-1.0, 0.0, 2.0]))
        Array([  0, 128, 255], dtype=uint8)
    """
    v = jnp.round((jnp.asarray(x, jnp.float32) + 1.0) * 127.5)
    return jnp.clip(v, 0, 255).astype(jnp.uint8)


def _check_images(x) -> None:
    if x.ndim != 4:
        raise ValueError(f"x must have shape [B, H, W, C], got shape {x.shape}.")


def random_crop(
    key: PRNGKeyArray | Array, x: Shaped[Array, "B H W C"], padding: int
) -> Shaped[Array, "B H W C"]:
    """Pad each image with zeros on all sides and crop it back at a random offset.

    For each image independently, offsets `(i, j)` are uniform on
    `{0, ..., 2 * padding}^2` and the output is `pad(x)[i : i + H, j : j + W]`.
    The zero is the value 0 of the input's dtype (black for `uint8`, mid-grey
    for floats in `[-1, 1]`, as in torchvision's `RandomCrop` on tensors).

    Args:
        key: a JAX PRNG key.
        x: images `[B, H, W, C]`.
        padding: non-negative number of pixels added on each side.

    Returns:
        Images of the same shape and dtype.

    Raises:
        ValueError: for a negative padding or a non-4-d input.

    Example:
        >>> x = jnp.ones((2, 8, 8, 1))
        >>> random_crop(jr.key(0), x, 2).shape
        (2, 8, 8, 1)
    """
    _check_images(x)
    if not isinstance(padding, int | np.integer) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}.")
    if padding == 0:
        return jnp.asarray(x)
    batch, height, width, channels = x.shape
    padded = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = jr.randint(key, (batch, 2), 0, 2 * padding + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(
            image, (offset[0], offset[1], 0), (height, width, channels)
        )

    return jax.vmap(crop)(padded, offsets)


def random_flip(
    key: PRNGKeyArray | Array, x: Shaped[Array, "B H W C"]
) -> Shaped[Array, "B H W C"]:
    """Flip each image left-right with probability 1/2, independently.

    Args:
        key: a JAX PRNG key.
        x: images `[B, H, W, C]`.

    Returns:
        Images of the same shape and dtype.

    Raises:
        ValueError: for a non-4-d input.

    Example:
        >>> random_flip(jr.key(0), jnp.ones((2, 8, 8, 3))).shape
        (2, 8, 8, 3)
    """
    _check_images(x)
    flip = jr.bernoulli(key, 0.5, (x.shape[0],))
    return jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
