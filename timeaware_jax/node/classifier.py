"""The ODE-Net image classifier of torchdiffeq's `odenet_mnist` example.

    logits = Dense(pool(relu(norm(ODEBlock(stem(x))))))

- `stem` (torchdiffeq's "downsampling"): `"conv"` is Conv(3x3, valid), norm,
  ReLU, Conv(4x4, stride 2, pad 1), norm, ReLU, Conv(4x4, stride 2, pad 1):
  28x28 -> 6x6 and 32x32 -> 7x7. `"res"` is Conv(3x3, valid) and two
  pre-activation residual blocks with stride 2 (1x1 projection shortcuts).
  `"none"` keeps the resolution (Conv(3x3, pad 1), norm, ReLU, Conv(3x3,
  pad 1)), for the embedded 8x8 digits.
- the ODE block integrates `ODEFunc` over [0, 1] (`ODEBlock`);
- the head is norm, ReLU, global average pooling and a Dense layer.

Every norm in the network is the same kind with the same number of groups.

Parameter count. With torchdiffeq's MNIST configuration (`stem="conv"`,
`features=64`, GroupNorm(32), `conditioning="additive"`, 1 input channel, 10
classes) the model has 208,266 parameters, exactly as torchdiffeq's
`odenet_mnist.py --downsampling-method conv`:

    stem    640 + 128 + 65,600 + 128 + 65,600          = 132,096
    ODE     3 * 128 (norms) + 2 * (65*64*9 + 64)        =  75,392
    head    128 + 64*10 + 10                            =     778
    total                                               = 208,266

(a GroupNorm over 64 channels has 128 affine parameters; `ConcatConv` sees
64 + 1 input channels).
"""

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from timeaware_jax.nn import Norm
from timeaware_jax.node.ode_block import ODEBlock
from timeaware_jax.node.vector_field import ODEFunc

STEMS = ("conv", "res", "none")


def _conv(features: int, kernel: int, stride: int, pad: int, *, bias=True, name):
    return nn.Conv(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding=((pad, pad), (pad, pad)),
        use_bias=bias,
        name=name,
    )


class ResBlock(nn.Module):
    """torchdiffeq's pre-activation residual block with a strided projection.

    `out = conv2(relu(norm2(conv1(relu(norm1(x)))))) + proj(relu(norm1(x)))`,
    convolutions without bias; `conv1` and the 1x1 `proj` have stride 2.
    """

    features: int
    norm: str = "group"
    groups: int = 32

    @nn.compact
    def __call__(self, x: Float[Array, "b h w c"], *, train: bool = False) -> Array:
        h = nn.relu(Norm(self.norm, self.groups, name="norm1")(x, train=train))
        shortcut = _conv(self.features, 1, 2, 0, bias=False, name="proj")(h)
        h = _conv(self.features, 3, 2, 1, bias=False, name="conv1")(h)
        h = nn.relu(Norm(self.norm, self.groups, name="norm2")(h, train=train))
        return _conv(self.features, 3, 1, 1, bias=False, name="conv2")(h) + shortcut


class ODENet(nn.Module):
    """The ODE-Net classifier: stem, ODE block, norm-ReLU-pool-Dense head.

    `__call__(x, *, train=False)` maps images `x` `[B, H, W, C]` (floats,
    e.g. in [-1, 1]) to logits `[B, num_classes]`, and sows the forward NFE
    of the ODE block into `ode_stats` (apply with `mutable=["ode_stats"]`, plus
    `"batch_stats"` when training with BatchNorm). `stem_features(x)` returns
    the ODE's initial state `y0`.

    **Arguments:**

    - `num_classes`: the number of classes.
    - `stem`: one of `STEMS` (module docstring).
    - `features`: channels of the ODE state (64 in torchdiffeq).
    - `norm`, `groups`, `conditioning`, `time_bias`, `embed_scale`: of the
      vector field (`ODEFunc`); `norm` and `groups` also for stem and head.
    - `solver`, `rtol`, `atol`, `dt0`, `adjoint`, `max_steps`, `throw`,
      `count_backward`: of the ODE block (`ODEBlock`).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> model = ODENet(features=8, groups=4, stem="none")
        >>> x = jnp.zeros((2, 8, 8, 1))
        >>> variables = model.init(jax.random.key(0), x)
        >>> logits, _ = model.apply(variables, x, mutable=["ode_stats"])
        >>> logits.shape
        (2, 10)
    """

    num_classes: int = 10
    stem: str = "conv"
    features: int = 64
    norm: str = "group"
    groups: int = 32
    conditioning: str = "additive"
    time_bias: float = 1.0
    embed_scale: float = 10.0
    solver: str = "dopri5"
    rtol: float = 1e-3
    atol: float = 1e-3
    dt0: float | None = None
    adjoint: str = "recursive"
    max_steps: int = 1000
    throw: bool = True
    count_backward: bool = False

    def setup(self):
        if self.stem not in STEMS:
            raise ValueError(f"stem={self.stem!r} is not one of {STEMS}.")
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(
                f"num_classes must be an integer >= 2, got {self.num_classes!r}."
            )
        f, norm, groups = self.features, self.norm, self.groups
        self.stem_conv0 = _conv(f, 3, 1, 1 if self.stem == "none" else 0, name="c0")
        if self.stem == "res":
            self.stem_blocks = [
                ResBlock(f, norm, groups, name=f"res{i}") for i in (1, 2)
            ]
        else:
            stride, kernel, pad = (1, 3, 1) if self.stem == "none" else (2, 4, 1)
            layers = (1,) if self.stem == "none" else (1, 2)
            self.stem_norms = [Norm(norm, groups, name=f"n{i}") for i in layers]
            self.stem_convs = [
                _conv(f, kernel, stride, pad, name=f"c{i}") for i in layers
            ]
        self.ode_block = ODEBlock(
            features=f,
            norm=norm,
            groups=groups,
            conditioning=self.conditioning,
            time_bias=self.time_bias,
            embed_scale=self.embed_scale,
            solver=self.solver,
            rtol=self.rtol,
            atol=self.atol,
            dt0=self.dt0,
            adjoint=self.adjoint,
            max_steps=self.max_steps,
            throw=self.throw,
            count_backward=self.count_backward,
        )
        self.head_norm = Norm(norm, groups, name="head_norm")
        self.head = nn.Dense(self.num_classes, name="head")

    def vector_field(self) -> ODEFunc:
        """The unbound `ODEFunc` of the ODE block.

        Its variables are the `["ode_block"]["vector_field"]` entries of this
        model's collections (`vector_field_variables`).
        """
        return ODEFunc(
            features=self.features,
            norm=self.norm,
            groups=self.groups,
            conditioning=self.conditioning,
            time_bias=self.time_bias,
            embed_scale=self.embed_scale,
            parent=None,
        )

    def stem_features(
        self, x: Float[Array, "batch height width cin"], *, train: bool = False
    ) -> Float[Array, "batch h w features"]:
        """The ODE's initial state `y0` (the stem's output)."""
        if x.ndim != 4:
            raise ValueError(f"x must have shape [B, H, W, C], got shape {x.shape}.")
        h = self.stem_conv0(x)
        if self.stem == "res":
            for block in self.stem_blocks:
                h = block(h, train=train)
            return h
        for norm, conv in zip(self.stem_norms, self.stem_convs, strict=True):
            h = conv(nn.relu(norm(h, train=train)))
        return h

    def __call__(
        self, x: Float[Array, "batch height width cin"], *, train: bool = False
    ) -> Float[Array, "batch classes"]:
        h = self.stem_features(x, train=train)
        h = self.ode_block(h, train=train)
        h = nn.relu(self.head_norm(h, train=train))
        h = jnp.mean(h, axis=(1, 2))  # [B, H, W, C] -> [B, C]
        return self.head(h)


def vector_field_variables(variables: dict) -> dict:
    """The vector field's variables inside an `ODENet`'s `variables`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> model = ODENet(features=8, groups=4, stem="none")
        >>> variables = model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)))
        >>> vf_variables = vector_field_variables(variables)
        >>> y0 = jnp.ones((2, 8, 8, 8))
        >>> model.vector_field().apply(vf_variables, 0.5, y0).shape
        (2, 8, 8, 8)
    """
    return {
        name: tree["ode_block"]["vector_field"]
        for name, tree in variables.items()
        if "ode_block" in tree
    }
