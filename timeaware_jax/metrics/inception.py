"""The FID Inception-v3 network in Flax.

This is the network behind FID: Inception-v3 with the 2015-12-05 TensorFlow
weights, as ported to PyTorch by pytorch-fid ("FIDInceptionV3"). It differs
from torchvision's Inception-v3 in four places, all reproduced here:

- 1,008 output classes instead of 1,000;
- in the 35x35 and 17x17 blocks (`Mixed_5*`, `Mixed_6b..e`) and in
  `Mixed_7b`, the average pool of the pooling branch does not count the zero
  padding (`count_include_pad=False`);
- in `Mixed_7c` the pooling branch uses a 3x3 max pool instead of an average
  pool;
- inputs in `[0, 1]` are resized to 299x299 with bilinear interpolation
  (half-pixel centres, no antialiasing, as `torch.nn.functional.interpolate`
  with `align_corners=False`) and mapped to `[-1, 1]`.

Each convolution carries the BatchNorm of the original folded into its kernel
and bias (see `timeaware_jax.metrics.convert`), so the network has no batch
statistics and is a pure function of its parameters. Parameter names follow
the PyTorch module names (`Mixed_6b/branch7x7_2/conv/kernel`).

`width_divisor` divides every channel count: a network 1/16 as wide has the
same structure and names, which is what the tests run. Only `width_divisor=1`
fits the real weights.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Shaped

FID_INPUT_SIZE = 299
NUM_CLASSES = 1008
POOL_FEATURES = 2048


def _pad(padding: int | tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ((ph, ph), (pw, pw))


def _channels(channels: int, width_divisor: int) -> int:
    return max(1, channels // width_divisor)


def _avg_pool_3x3(x):
    return nn.avg_pool(x, (3, 3), (1, 1), _pad(1), count_include_pad=False)


class BasicConv(nn.Module):
    """Convolution (BatchNorm folded into kernel and bias), then ReLU."""

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: int | tuple[int, int] = 0
    precision: str | None = "highest"

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(
            self.features,
            self.kernel_size,
            strides=(self.strides, self.strides),
            padding=_pad(self.padding),
            precision=self.precision,
            name="conv",
        )(x)
        return nn.relu(x)


class _Block(nn.Module):
    """Shared fields of the Inception blocks."""

    width_divisor: int = 1
    precision: str | None = "highest"

    def conv(self, name, channels, kernel_size, strides=1, padding=0):
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        return BasicConv(
            _channels(channels, self.width_divisor),
            kernel_size,
            strides,
            padding,
            precision=self.precision,
            name=name,
        )


class InceptionA(_Block):
    """35x35 block: 1x1, 5x5, double 3x3 and average-pool branches."""

    pool_features: int = 32

    @nn.compact
    def __call__(self, x):
        b1 = self.conv("branch1x1", 64, 1)(x)
        b5 = self.conv("branch5x5_1", 48, 1)(x)
        b5 = self.conv("branch5x5_2", 64, 5, padding=2)(b5)
        b3 = self.conv("branch3x3dbl_1", 64, 1)(x)
        b3 = self.conv("branch3x3dbl_2", 96, 3, padding=1)(b3)
        b3 = self.conv("branch3x3dbl_3", 96, 3, padding=1)(b3)
        bp = self.conv("branch_pool", self.pool_features, 1)(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
    """35x35 -> 17x17 reduction block."""

    @nn.compact
    def __call__(self, x):
        b3 = self.conv("branch3x3", 384, 3, strides=2)(x)
        bd = self.conv("branch3x3dbl_1", 64, 1)(x)
        bd = self.conv("branch3x3dbl_2", 96, 3, padding=1)(bd)
        bd = self.conv("branch3x3dbl_3", 96, 3, strides=2)(bd)
        bp = nn.max_pool(x, (3, 3), (2, 2))
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionC(_Block):
    """17x17 block with factorised 7x7 convolutions."""

    channels_7x7: int = 128

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = self.conv("branch1x1", 192, 1)(x)
        b7 = self.conv("branch7x7_1", c7, 1)(x)
        b7 = self.conv("branch7x7_2", c7, (1, 7), padding=(0, 3))(b7)
        b7 = self.conv("branch7x7_3", 192, (7, 1), padding=(3, 0))(b7)
        bd = self.conv("branch7x7dbl_1", c7, 1)(x)
        bd = self.conv("branch7x7dbl_2", c7, (7, 1), padding=(3, 0))(bd)
        bd = self.conv("branch7x7dbl_3", c7, (1, 7), padding=(0, 3))(bd)
        bd = self.conv("branch7x7dbl_4", c7, (7, 1), padding=(3, 0))(bd)
        bd = self.conv("branch7x7dbl_5", 192, (1, 7), padding=(0, 3))(bd)
        bp = self.conv("branch_pool", 192, 1)(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
    """17x17 -> 8x8 reduction block."""

    @nn.compact
    def __call__(self, x):
        b3 = self.conv("branch3x3_1", 192, 1)(x)
        b3 = self.conv("branch3x3_2", 320, 3, strides=2)(b3)
        b7 = self.conv("branch7x7x3_1", 192, 1)(x)
        b7 = self.conv("branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7)
        b7 = self.conv("branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7)
        b7 = self.conv("branch7x7x3_4", 192, 3, strides=2)(b7)
        bp = nn.max_pool(x, (3, 3), (2, 2))
        return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionE(_Block):
    """8x8 block with split 1x3 / 3x1 branches; `pool` is "avg" or "max"."""

    pool: str = "avg"

    @nn.compact
    def __call__(self, x):
        b1 = self.conv("branch1x1", 320, 1)(x)
        b3 = self.conv("branch3x3_1", 384, 1)(x)
        b3 = jnp.concatenate(
            [
                self.conv("branch3x3_2a", 384, (1, 3), padding=(0, 1))(b3),
                self.conv("branch3x3_2b", 384, (3, 1), padding=(1, 0))(b3),
            ],
            axis=-1,
        )
        bd = self.conv("branch3x3dbl_1", 448, 1)(x)
        bd = self.conv("branch3x3dbl_2", 384, 3, padding=1)(bd)
        bd = jnp.concatenate(
            [
                self.conv("branch3x3dbl_3a", 384, (1, 3), padding=(0, 1))(bd),
                self.conv("branch3x3dbl_3b", 384, (3, 1), padding=(1, 0))(bd),
            ],
            axis=-1,
        )
        if self.pool == "max":
            pooled = nn.max_pool(x, (3, 3), (1, 1), _pad(1))
        else:
            pooled = _avg_pool_3x3(x)
        bp = self.conv("branch_pool", 192, 1)(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class Classifier(nn.Module):
    """The final linear layer; returns logits with and without its bias."""

    num_classes: int = NUM_CLASSES
    precision: str | None = "highest"

    @nn.compact
    def __call__(self, x):
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.num_classes)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.num_classes,))
        unbiased = jnp.dot(x, kernel, precision=self.precision)
        return unbiased + bias, unbiased


def resize_bilinear(
    x: Float[Array, "B H W C"], size: int = FID_INPUT_SIZE
) -> Float[Array, "B size size C"]:
    """Bilinear resize with half-pixel centres and no antialiasing.

    Matches `torch.nn.functional.interpolate(x, (size, size), mode="bilinear",
    align_corners=False)`, the resize of pytorch-fid.

    Args:
        x: images `[B, H, W, C]`.
        size: output height and width.

    Returns:
        Images `[B, size, size, C]`, float32.
    """
    shape = (x.shape[0], size, size, x.shape[3])
    return jax.image.resize(
        x.astype(jnp.float32), shape, method="bilinear", antialias=False
    )


class InceptionV3(nn.Module):
    """The FID Inception-v3: pool features and class logits of images in [0, 1].

    Attributes:
        width_divisor: divides every channel count (1 for the real network).
        input_size: images are resized to `input_size x input_size` (299 for
            FID; at least 75).
        precision: matmul and convolution precision ("highest" keeps float32
            accuracy on TPU and GPU; None for the backend default).

    Call:
        x: `float32 [B, H, W, 3]` with values in `[0, 1]`.

    Returns:
        A dict with `"features"` (`[B, 2048]` pool3 features, the FID space),
        `"logits"` (`[B, 1008]`) and `"logits_unbiased"` (`[B, 1008]`, the
        logits without the final bias, as used by the original Inception
        Score code).

    Warning:
        `model.init` draws ~190 random tensors and takes minutes to compile on
        a CPU; it is never needed for FID, whose weights are loaded
        (`load_params`). For shapes, use `jax.eval_shape(model.init, ...)`.

    Example:
        >>> model = InceptionV3()
        >>> x = jnp.zeros((2, 32, 32, 3))
        >>> params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
        >>> out = jax.eval_shape(model.apply, {"params": params}, x)
        >>> out["features"].shape, out["logits"].shape
        ((2, 2048), (2, 1008))
    """

    width_divisor: int = 1
    input_size: int = FID_INPUT_SIZE
    precision: str | None = "highest"

    @nn.compact
    def __call__(self, x: Float[Array, "B H W 3"]) -> dict[str, Array]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"x must have shape [B, H, W, 3], got {x.shape}.")
        kw = dict(width_divisor=self.width_divisor, precision=self.precision)

        x = resize_bilinear(x, self.input_size)
        x = 2.0 * x - 1.0

        def conv(name, channels, kernel_size, strides=1, padding=0):
            return BasicConv(
                _channels(channels, self.width_divisor),
                (kernel_size, kernel_size),
                strides,
                padding,
                precision=self.precision,
                name=name,
            )

        x = conv("Conv2d_1a_3x3", 32, 3, strides=2)(x)
        x = conv("Conv2d_2a_3x3", 32, 3)(x)
        x = conv("Conv2d_2b_3x3", 64, 3, padding=1)(x)
        x = nn.max_pool(x, (3, 3), (2, 2))
        x = conv("Conv2d_3b_1x1", 80, 1)(x)
        x = conv("Conv2d_4a_3x3", 192, 3)(x)
        x = nn.max_pool(x, (3, 3), (2, 2))

        x = InceptionA(**kw, pool_features=32, name="Mixed_5b")(x)
        x = InceptionA(**kw, pool_features=64, name="Mixed_5c")(x)
        x = InceptionA(**kw, pool_features=64, name="Mixed_5d")(x)
        x = InceptionB(**kw, name="Mixed_6a")(x)
        x = InceptionC(**kw, channels_7x7=128, name="Mixed_6b")(x)
        x = InceptionC(**kw, channels_7x7=160, name="Mixed_6c")(x)
        x = InceptionC(**kw, channels_7x7=160, name="Mixed_6d")(x)
        x = InceptionC(**kw, channels_7x7=192, name="Mixed_6e")(x)
        x = InceptionD(**kw, name="Mixed_7a")(x)
        x = InceptionE(**kw, pool="avg", name="Mixed_7b")(x)
        x = InceptionE(**kw, pool="max", name="Mixed_7c")(x)

        features = jnp.mean(x, axis=(1, 2))  # [B, h, w, 2048] -> [B, 2048]
        logits, unbiased = Classifier(precision=self.precision, name="fc")(features)
        return {"features": features, "logits": logits, "logits_unbiased": unbiased}


def to_unit_rgb(
    images: Shaped[Array, "B H W C"] | np.ndarray,
) -> Float[Array, "B H W 3"]:
    """Map `uint8` images with 1 or 3 channels to float RGB in `[0, 1]`.

    Grayscale images are repeated over three channels, as FID code does.

    Args:
        images: `uint8 [B, H, W, C]`, `C` in {1, 3}.

    Returns:
        `float32 [B, H, W, 3]`, `v / 255`.

    Raises:
        ValueError: for another dtype or channel count.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            "images must be uint8 of shape [B, H, W, C] with C in (1, 3), got "
            f"dtype {images.dtype} and shape {images.shape}."
        )
    x = jnp.asarray(images, jnp.float32) / 255.0
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)  # [B, H, W, 1] -> [B, H, W, 3]
    return x


def width_divisor_of(params) -> int:
    """The `width_divisor` that a parameter pytree was made for."""
    stem = int(params["Conv2d_1a_3x3"]["conv"]["kernel"].shape[-1])
    if 32 % stem:
        raise ValueError(
            f"params has {stem} stem channels; expected a divisor of 32 (32 for "
            "the real FID Inception)."
        )
    return 32 // stem
