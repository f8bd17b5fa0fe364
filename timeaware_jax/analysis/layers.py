"""Find the time-dependent layers of a model and compute their exact survival.

`time_layers` runs a model once on a grid of times, with
`flax.linen.intercept_methods` watching every call. Each `ConcatConv` with a
time channel is paired with the normalization that receives its output, and
each `TimeConditionedNorm` carries its own. From the recorded parameters and
shapes it returns one `TimeLayer` per time-dependent layer, with the
closed-form prediction (`theory`) and the exact parameter-level survival
(`exact`). Input values do not matter: zeros of the right shape will do.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from timeaware_jax.analysis.exact import (
    Survival,
    concat_conv_survival,
    offset_survival,
)
from timeaware_jax.analysis.theory import channels_per_group, surviving_fraction
from timeaware_jax.nn.concat_conv import ConcatConv
from timeaware_jax.nn.conditioning import TimeConditionedNorm
from timeaware_jax.nn.norm import Norm

AFTER_NORM = ("scale_shift", "add_after_norm")


@dataclass(frozen=True)
class TimeLayer:
    """One time-dependent layer and what its normalization leaves of `t`.

    - `name`: module path; `norm_name`: path of its normalization (or `None`);
      `after_name`: the module whose output is "after the normalization".
    - `kind`: `"concat_conv"` or `"offset"`; `conditioning`: the remedy.
    - `norm`, `groups`, `channels`, `m`: the normalization and its
      channels per statistics set.
    - `predicted`: closed-form survival for i.i.d. per-channel offsets
      (`nan` where no closed form applies); `exact`: parameter-level
      `Survival`.
    """

    name: str
    kind: str
    conditioning: str
    norm: str
    groups: int | None
    channels: int
    m: int | None
    norm_name: str | None
    after_name: str
    predicted: float
    exact: Survival


def norm_spec(module: nn.Module, channels: int) -> tuple[str, int | None]:
    """`(kind, groups)` of a normalization module of ours or of Flax."""
    if isinstance(module, Norm):
        return module.kind, module.groups if module.kind == "group" else None
    if isinstance(module, nn.BatchNorm):
        return "batch", None
    if isinstance(module, nn.GroupNorm):
        groups = module.num_groups or channels // module.group_size
        if groups == channels:
            return "instance", None
        return ("layer", None) if groups == 1 else ("group", groups)
    if isinstance(module, nn.LayerNorm):
        return "layer", None
    return "none", None


def concat_conv_label(layer: ConcatConv) -> str:
    """The remedy a `ConcatConv` implements, in `CONDITIONINGS` vocabulary."""
    if layer.time_input == "positional":
        return "positional"
    return "bias_init" if layer.time_bias is not None else "additive"


def record_calls(apply_fn: Callable, variables, x, t, kwargs) -> list[dict]:
    """Run `apply_fn` eagerly and record the calls that matter, in order."""
    calls = []

    def interceptor(next_fun, args, call_kwargs, context):
        out = next_fun(*args, **call_kwargs)
        if context.method_name != "__call__":
            return out
        module = context.module
        name = "/".join(module.path) or "<root>"
        params = module.variables.get("params", {})
        calls.append(dict(name=name, module=module, args=args, out=out, params=params))
        return out

    with nn.intercept_methods(interceptor):
        apply_fn(variables, x, t, **kwargs)
    return calls


def paired_norm(calls: list[dict], index: int) -> dict | None:
    """The first later normalization call whose input is call `index`'s output."""
    out = calls[index]["out"]
    for call in calls[index + 1 :]:
        norm_types = (Norm, nn.BatchNorm, nn.GroupNorm, nn.LayerNorm)
        if isinstance(call["module"], norm_types) and call["args"][0] is out:
            return call
    return None


def predicted_survival(conditioning, norm, channels, groups, shared_t, batch):
    """Closed-form survival for the remedy; `nan` where none applies."""
    if conditioning in AFTER_NORM:
        return 1.0
    if conditioning == "positional":
        return float("nan")
    return surviving_fraction(
        norm, channels, groups or 32, shared_t=shared_t, batch=batch
    )


def concat_conv_row(calls, index, ts, shared_t) -> TimeLayer | None:
    call = calls[index]
    layer: ConcatConv = call["module"]
    if layer.time_input == "none":
        return None
    x = call["args"][1]
    channels = call["out"].shape[-1]
    norm_call = paired_norm(calls, index)
    norm, groups = ("none", None)
    if norm_call is not None:
        norm, groups = norm_spec(norm_call["module"], channels)
    conditioning = concat_conv_label(layer)
    exact = concat_conv_survival(
        call["params"]["kernel"],
        x.shape[1],
        x.shape[2],
        norm,
        groups or 32,
        ts=ts,
        shared_t=shared_t,
        strides=layer.strides,
        padding=layer.padding,
        transpose=layer.transpose,
        time_input=layer.time_input,
        time_scale=layer.time_scale,
        max_period=layer.max_period,
    )
    return TimeLayer(
        name=call["name"],
        kind="concat_conv",
        conditioning=conditioning,
        norm=norm,
        groups=groups,
        channels=channels,
        m=channels_per_group(norm, channels, groups or 32),
        norm_name=None if norm_call is None else norm_call["name"],
        after_name=call["name"] if norm_call is None else norm_call["name"],
        predicted=predicted_survival(
            conditioning, norm, channels, groups, shared_t, len(ts)
        ),
        exact=exact,
    )


def offset_row(call, ts, shared_t) -> TimeLayer:
    layer: TimeConditionedNorm = call["module"]
    h, emb = call["args"][0], call["args"][1]
    channels = h.shape[-1]
    groups = layer.groups if layer.norm == "group" else None
    proj = call["params"]["time_proj"]
    if layer.conditioning in AFTER_NORM:
        tau = np.asarray(emb @ proj["kernel"] + proj["bias"])
        energy = float(np.sum((tau - tau.mean(axis=0)) ** 2))
        exact = Survival(total=energy, surviving=energy)
    else:
        exact = offset_survival(
            proj["kernel"],
            proj["bias"],
            emb,
            h.shape[1],
            h.shape[2],
            layer.norm,
            layer.groups,
            positional=layer.conditioning == "positional",
            shared_t=shared_t,
            max_period=layer.max_period,
        )
    return TimeLayer(
        name=call["name"],
        kind="offset",
        conditioning=layer.conditioning,
        norm=layer.norm,
        groups=groups,
        channels=channels,
        m=channels_per_group(layer.norm, channels, layer.groups),
        norm_name=f"{call['name']}/norm",
        after_name=call["name"],
        predicted=predicted_survival(
            layer.conditioning, layer.norm, channels, groups, shared_t, len(ts)
        ),
        exact=exact,
    )


def time_layers(
    apply_fn: Callable,
    variables,
    x: ArrayLike,
    ts: Sequence[float] | ArrayLike,
    *,
    shared_t: bool = False,
    apply_kwargs: dict | None = None,
) -> list[TimeLayer]:
    """One row per time-dependent layer of a model, with exact survival.

    **Arguments:**

    - `apply_fn`: called as `apply_fn(variables, x, t, **apply_kwargs)` with
      `t` of shape `[T]`; usually a model's `apply`.
    - `variables`: the model's variables (parameters are all that is read).
    - `x`: one input `[1, ...]` or a batch; only its shape matters. It is
      repeated to one sample per time.
    - `ts`: the grid of times, `[T]`, in the model's units.
    - `shared_t`: whether, in use, a batch shares one `t` (ODE: true;
      diffusion: false). Decides what BatchNorm removes.
    - `apply_kwargs`: extra keyword arguments for `apply_fn`.

    **Returns:** `TimeLayer` rows in call order.

    **Raises:** `ValueError` for fewer than 2 times.
    """
    ts = jnp.asarray(ts, dtype=jnp.float32).reshape(-1)
    if ts.size < 2:
        raise ValueError(f"ts must hold at least 2 times, got {ts.size}.")
    x = jnp.asarray(x)
    x = jnp.broadcast_to(x[:1], (ts.size, *x.shape[1:]))  # one sample per time
    calls = record_calls(apply_fn, variables, x, ts, dict(apply_kwargs or {}))

    rows = []
    for index, call in enumerate(calls):
        if isinstance(call["module"], ConcatConv):
            row = concat_conv_row(calls, index, ts, shared_t)
            if row is not None:
                rows.append(row)
        elif isinstance(call["module"], TimeConditionedNorm):
            rows.append(offset_row(call, ts, shared_t))
    return rows
