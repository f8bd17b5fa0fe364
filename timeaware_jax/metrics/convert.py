"""Convert pytorch-fid's Inception weights into a Flax parameter pytree.

pytorch-fid distributes the 2015-12-05 FID Inception weights as a PyTorch
state dict, `pt_inception-2015-12-05-6726825d.pth`. Each `BasicConv2d` there
is a bias-free convolution followed by BatchNorm (eps 0.001) in inference
mode; we fold the BatchNorm into the convolution:

    s = gamma / sqrt(running_var + eps)
    kernel = W * s   (per output channel),   bias = beta - running_mean * s

and transpose PyTorch's `[out, in, kh, kw]` kernels to Flax's
`[kh, kw, in, out]` and the `[out, in]` linear weight to `[in, out]`.
Folding is done in float64 and the result stored as float32. Every tensor is
mapped by name, the shapes are checked against `InceptionV3`, and any
leftover or missing tensor is an error.
"""

import functools
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from timeaware_jax.metrics.inception import (
    FID_INPUT_SIZE,
    InceptionV3,
    width_divisor_of,
)

BN_EPS = 1e-3
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
# Buffers that carry no information for inference.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (`.pth`) into NumPy arrays on the CPU.

    Args:
        path: the `.pth` file, for example
            `pt_inception-2015-12-05-6726825d.pth`.

    Returns:
        A dict from tensor name to NumPy array.

    Raises:
        ImportError: when PyTorch is not installed (it is needed only here).
        FileNotFoundError: when the file does not exist.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} does not exist.")
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading a .pth file needs PyTorch: `pip install torch` (the CPU "
            "build is enough) or `pip install 'timeaware-jax[bench]'`. It is "
            "needed only once, to convert the weights."
        ) from error
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise ValueError(
            f"path {str(path)!r} holds a {type(state_dict).__name__}, expected a "
            "state dict (a dict of tensors)."
        )
    return {name: tensor.detach().numpy() for name, tensor in state_dict.items()}


def _set(tree: dict, path: list[str], value: np.ndarray) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _fold(state: dict[str, np.ndarray], prefix: str, used: set[str]):
    weight = np.asarray(state[f"{prefix}.conv.weight"], np.float64)
    used.add(f"{prefix}.conv.weight")
    bn = {}
    for field in _BN_FIELDS:
        name = f"{prefix}.bn.{field}"
        if name not in state:
            raise ValueError(f"state_dict has {prefix}.conv.weight but no {name}.")
        bn[field] = np.asarray(state[name], np.float64)
        used.add(name)
    scale = bn["weight"] / np.sqrt(bn["running_var"] + BN_EPS)  # [out]
    kernel = weight.transpose(2, 3, 1, 0) * scale  # [out,in,kh,kw] -> [kh,kw,in,out]
    bias = bn["bias"] - bn["running_mean"] * scale
    return kernel.astype(np.float32), bias.astype(np.float32)


@functools.cache
def template_params(width_divisor: int = 1):
    """Shapes of the `InceptionV3` parameters, without initialising them."""
    model = InceptionV3(width_divisor=width_divisor)
    x = jnp.zeros((1, FID_INPUT_SIZE, FID_INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), x)["params"]


def _flat(tree) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(k.key for k in path): tuple(np.shape(leaf)) for path, leaf in leaves
    }


def convert_state_dict(state_dict: dict[str, np.ndarray]) -> dict:
    """Map a pytorch-fid FID Inception state dict onto `InceptionV3` parameters.

    Args:
        state_dict: tensor name -> array, e.g. from `load_torch_state_dict`.
            Names are pytorch-fid's (`Mixed_5b.branch1x1.conv.weight`,
            `Mixed_5b.branch1x1.bn.running_var`, ..., `fc.weight`, `fc.bias`).
            A narrower network of the same structure (all channel counts
            divided by a common factor) is accepted too.

    Returns:
        A nested dict of float32 NumPy arrays, the `params` of
        `InceptionV3(width_divisor=d)` with `d` read from the stem.

    Raises:
        ValueError: when a tensor is unused, missing, or has the wrong shape;
            the message lists them.

    Example:
        >>> state = load_torch_state_dict("pt_inception-2015-12-05-6726825d.pth")
        ... # doctest: +SKIP
        >>> params = convert_state_dict(state)  # doctest: +SKIP
    """
    state = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    params: dict = {}
    used: set[str] = set()
    for name in sorted(state):
        if name.endswith(".conv.weight"):
            prefix = name[: -len(".conv.weight")]
            kernel, bias = _fold(state, prefix, used)
            path = prefix.split(".") + ["conv"]
            _set(params, path + ["kernel"], kernel)
            _set(params, path + ["bias"], bias)
    for field, key in (("weight", "kernel"), ("bias", "bias")):
        if f"fc.{field}" in state:
            value = np.asarray(state[f"fc.{field}"], np.float32)
            _set(params, ["fc", key], value.T if field == "weight" else value)
            used.add(f"fc.{field}")

    leftover = sorted(set(state) - used)
    if leftover:
        raise ValueError(
            f"state_dict has {len(leftover)} tensors with no place in the FID "
            f"Inception: {leftover[:10]}{' ...' if len(leftover) > 10 else ''}"
        )
    if "Conv2d_1a_3x3" not in params:
        raise ValueError(
            "state_dict has no Conv2d_1a_3x3.conv.weight: not an Inception."
        )
    check_params(params, width_divisor_of(params))
    return params


def check_params(params, width_divisor: int = 1) -> None:
    """Raise a `ValueError` unless `params` fits `InceptionV3(width_divisor)`.

    Every parameter must be present with the expected shape, and nothing else.
    """
    expected = _flat(template_params(width_divisor))
    got = _flat(params)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or extra or wrong:
        details = [
            f"missing {missing[:5]}" if missing else "",
            f"unexpected {extra[:5]}" if extra else "",
            "wrong shapes "
            + ", ".join(f"{k}: {got[k]} (expected {expected[k]})" for k in wrong[:5])
            if wrong
            else "",
        ]
        raise ValueError(
            "params do not fit the FID Inception-v3 "
            f"(width_divisor={width_divisor}): " + "; ".join(d for d in details if d)
        )


def save_params(params, path: str | os.PathLike) -> pathlib.Path:
    """Save Inception parameters: `.npz` for a file name ending so, else Orbax.

    Args:
        params: the parameter pytree.
        path: destination; a `.npz` file, or a directory for an Orbax
            checkpoint (it must not exist yet).

    Returns:
        The absolute path written.
    """
    path = pathlib.Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        flat = {
            "/".join(k.key for k in keypath): np.asarray(leaf)
            for keypath, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        }
        np.savez(path, **flat)
        return path
    import orbax.checkpoint as ocp

    checkpointer = ocp.PyTreeCheckpointer()
    checkpointer.save(path, jax.tree.map(np.asarray, params))
    return path


def load_params(path: str | os.PathLike) -> dict:
    """Load Inception parameters saved by `save_params` (`.npz` or Orbax).

    A `.pth` file is converted on the fly (this needs PyTorch).

    Raises:
        FileNotFoundError: when the path does not exist.
        ValueError: when the parameters do not fit `InceptionV3`.
    """
    path = pathlib.Path(path).expanduser().absolute()
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist.")
    if path.suffix == ".pth":
        return convert_state_dict(load_torch_state_dict(path))
    if path.suffix == ".npz":
        params: dict = {}
        with np.load(path) as data:
            for name in data.files:
                _set(params, name.split("/"), data[name])
    else:
        import orbax.checkpoint as ocp

        params = ocp.PyTreeCheckpointer().restore(path)
        params = jax.tree.map(np.asarray, params)
    check_params(params, width_divisor_of(params))
    return params


def convert_file(src: str | os.PathLike, dst: str | os.PathLike) -> pathlib.Path:
    """Convert pytorch-fid's `.pth` weights to a `.npz` file or Orbax directory.

    Example:
        >>> convert_file("pt_inception-2015-12-05-6726825d.pth",
        ...              "fid_inception_v3.npz")  # doctest: +SKIP
    """
    return save_params(convert_state_dict(load_torch_state_dict(src)), dst)
