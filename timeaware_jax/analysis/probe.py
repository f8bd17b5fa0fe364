"""Empirical probes: how much does each layer of any Flax model depend on `t`?

The *time-variance ratio* of a tensor-valued function `g(x, t)` over inputs X
and times T (DESIGN.md, section 6) is

    ratio = mean_x var_t g(x, t) / mean_t var_x g(x, t)

with variances summed over the tensor's elements. Zero means blind to time.
`probe_time_variance` evaluates a model on every time of a grid, captures the
output of every submodule call (and the input of every normalization layer)
with `flax.linen.intercept_methods`, and reports the ratio of each, in call
order, together with the output's sensitivity to `t` computed with `jax.jvp`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from timeaware_jax.nn.norm import Norm

NORM_TYPES = (Norm, nn.BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class ProbeRow:
    """One captured tensor: `name` is the module path, `role` "out" or "in"."""

    name: str
    module: str
    role: str
    shape: tuple[int, ...]
    ratio: float


@dataclass(frozen=True)
class ProbeResult:
    """Rows in call order, the output's ratio and its sensitivity to `t`."""

    rows: tuple[ProbeRow, ...]
    output_ratio: float
    sensitivity: float
    ts: tuple[float, ...] = field(default=())

    def ratio(self, name: str, role: str = "out") -> float:
        """The ratio of the tensor `name` (`role` "out" or "in"); `nan` if absent."""
        for row in self.rows:
            if row.name == name and row.role == role:
                return row.ratio
        return float("nan")

    def norm_survival(self) -> list[tuple[str, float, float, float]]:
        """`(name, ratio before, ratio after, after / before)` per norm layer.

        A normalization nested inside another (Flax's `GroupNorm` inside our
        `Norm`) is reported once, under the outer name.
        """
        result = []
        norms = [row.name for row in self.rows if row.role == "in"]
        for row in self.rows:
            nested = any(row.name.startswith(f"{name}/") for name in norms)
            if row.role == "in" and not nested:
                after = self.ratio(row.name, "out")
                result.append(
                    (row.name, row.ratio, after, safe_divide(after, row.ratio))
                )
        return result


def safe_divide(a: float, b: float) -> float:
    """`a / b`, with `0 / 0 = nan` and `a / 0 = inf` for `a > 0`."""
    if b == 0:
        return float("nan") if a == 0 else float("inf")
    return a / b


def time_variance_ratio(values: Float[ArrayLike, "times inputs ..."]) -> float:
    """Time-variance ratio of samples `values[t, x, ...]` (module docstring).

    **Arguments:** `values` of shape `[T, N, ...]`: `T` times, `N` inputs.

    **Returns:** a non-negative float; `inf` when the tensor varies over time
    but not over inputs (a pure time embedding), `nan` when it varies over
    neither.

    >>> time_variance_ratio(np.ones((3, 4, 2)))
    nan
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 2:
        raise ValueError(
            f"values must have shape [T, N, ...], got shape {values.shape}."
        )
    flat = values.reshape(
        values.shape[0], values.shape[1], -1
    )  # [T, N, ...] -> [T, N, D]
    over_t = np.mean(np.sum(np.var(flat, axis=0), axis=-1))
    over_x = np.mean(np.sum(np.var(flat, axis=1), axis=-1))
    return safe_divide(float(over_t), float(over_x))


def first_array(tree) -> Array | None:
    """The first array leaf of `tree` (a model output may be `(out, state)`)."""
    for leaf in jax.tree.leaves(tree):
        if hasattr(leaf, "shape"):
            return leaf
    return None


def capture_calls(
    apply_fn: Callable, batch: int, names: list, kwargs: dict
) -> Callable:
    """Wrap `apply_fn` so that it also returns every captured tensor.

    `names` is filled, at trace time, with `(name, module, role)` triples in
    the order of the returned list of tensors.
    """

    def run(variables, x, t):
        values = []
        names.clear()

        def keep(name, module, role, value):
            if hasattr(value, "shape") and value.ndim >= 1 and value.shape[0] == batch:
                names.append((name, module, role))
                values.append(value)

        def interceptor(next_fun, args, call_kwargs, context):
            out = next_fun(*args, **call_kwargs)
            if context.method_name != "__call__":
                return out
            module = context.module
            name = "/".join(module.path) or "<root>"
            kind = type(module).__name__
            if isinstance(module, NORM_TYPES) and args:
                keep(name, kind, "in", args[0])
            keep(name, kind, "out", first_array(out))
            return out

        with nn.intercept_methods(interceptor):
            out = first_array(apply_fn(variables, x, t, **kwargs))
        return out, values, relative_tangent(apply_fn, variables, x, t, kwargs)

    return run


def relative_tangent(apply_fn, variables, x, t, kwargs) -> Array:
    """`rms(d out / d t) / rms(out)` at one `t`, by forward-mode AD."""

    def out_of(t_):
        return first_array(apply_fn(variables, x, t_, **kwargs))

    out, tangent = jax.jvp(out_of, (t,), (jnp.ones_like(t),))
    return jnp.sqrt(jnp.mean(tangent**2) / (jnp.mean(out**2) + 1e-30))


def probe_time_variance(
    apply_fn: Callable,
    variables,
    x: Float[ArrayLike, "batch ..."],
    ts: Sequence[float] | ArrayLike,
    *,
    batched_t: bool = True,
    apply_kwargs: dict | None = None,
) -> ProbeResult:
    """Time-variance ratio of every captured intermediate of a Flax model.

    **Arguments:**

    - `apply_fn`: called as `apply_fn(variables, x, t, **apply_kwargs)`; a
      Flax `Module.apply` or a wrapper of it that reorders the arguments.
    - `variables`: the model's variables.
    - `x`: `N` inputs, `[N, ...]`; `N >= 2`.
    - `ts`: the times to probe, `T >= 2` of them, in the model's units.
    - `batched_t`: pass `t` as `[N]` (diffusion); `False` passes a scalar
      shared by the batch (an ODE vector field).
    - `apply_kwargs`: extra keyword arguments, for example
      `{"train": False}` or `{"mutable": ["batch_stats"]}`.

    **Returns:** `ProbeResult`. Rows with role `"in"` are the inputs of
    normalization layers; `norm_survival()` divides after by before.

    **Raises:** `ValueError` for fewer than 2 inputs or times.
    """
    x = jnp.asarray(x)
    ts = np.asarray(ts, dtype=np.float32).reshape(-1)
    if x.ndim < 1 or x.shape[0] < 2:
        raise ValueError(
            f"x must hold at least 2 inputs [N, ...], got shape {x.shape}."
        )
    if ts.size < 2:
        raise ValueError(f"ts must hold at least 2 times, got {ts.size}.")
    kwargs = dict(apply_kwargs or {})
    batch = x.shape[0]
    names: list = []
    run = jax.jit(capture_calls(apply_fn, batch, names, kwargs))

    def as_t(t):
        return jnp.full((batch,), t) if batched_t else jnp.asarray(t)

    outputs, captured, tangents = [], [], []
    for t in ts:
        out, values, tangent = run(variables, x, as_t(t))
        outputs.append(np.asarray(out))
        captured.append([np.asarray(v) for v in values])
        tangents.append(float(tangent))

    rows = []
    for i, (name, module, role) in enumerate(names):
        stacked = np.stack([values[i] for values in captured])  # [T, N, ...]
        ratio = time_variance_ratio(stacked)
        rows.append(ProbeRow(name, module, role, stacked.shape[2:], ratio))

    return ProbeResult(
        rows=tuple(rows),
        output_ratio=time_variance_ratio(np.stack(outputs)),
        sensitivity=float(np.mean(tangents)),
        ts=tuple(float(t) for t in ts),
    )
