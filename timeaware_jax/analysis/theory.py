"""Closed-form theory of how much of a time offset survives a normalization.

A time-dependent block adds an offset `tau[n, c]`, constant over pixels, and a
normalization subtracts its mean over the statistics set S (DESIGN.md, section
2). For offsets that are i.i.d. over channels with zero mean, the expected
fraction of their energy that survives the centering is

| norm                    | surviving fraction |
| ----------------------- | ------------------ |
| BatchNorm, shared `t`   | 0                  |
| BatchNorm, per-sample t | 1 - 1/B            |
| GroupNorm(G)            | 1 - 1/m, m = C / G |
| LayerNorm               | 1 - 1/C            |
| InstanceNorm            | 0                  |
| none                    | 1                  |

What survives is then divided by the standard deviation over S, which also
holds the features' own within-group variance `v`. With `q` the surviving
within-group variance of the offsets, the time part of the normalized output
has RMS `sqrt(q / (v + q))`; with the relative variance `rho = sigma^2 / v` of
the offsets (variance `sigma^2` over channels) and the surviving fraction `s`,
`q = s * sigma^2` and the RMS is `sqrt(s * rho / (1 + s * rho))`.
"""

import math

from timeaware_jax.nn.norm import check_norm, num_groups


def channels_per_group(norm: str, channels: int, groups: int = 32) -> int | None:
    """`m`, the channels in one statistics set; `None` for BatchNorm and none.

    >>> channels_per_group("group", 64, 32)
    2
    """
    if channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}.")
    g = num_groups(norm, groups, channels)
    return None if g is None else channels // g


def surviving_fraction(
    norm: str,
    channels: int,
    groups: int = 32,
    *,
    shared_t: bool = True,
    batch: int | None = None,
) -> float:
    """Expected energy fraction of i.i.d. per-channel offsets that survives.

    **Arguments:**

    - `norm`: one of `timeaware_jax.nn.NORMS`.
    - `channels`: `C`, the channels of the normalized tensor.
    - `groups`: GroupNorm's `G`; must divide `C`.
    - `shared_t`: whether all samples of a batch share one `t` (inside an ODE
      solve) or each has its own (diffusion training). Matters for BatchNorm.
    - `batch`: `B`, required for BatchNorm with per-sample `t`.

    **Returns:** a number in [0, 1] (table in the module docstring).

    **Raises:** `ValueError` for an unknown norm, groups not dividing channels,
    or a missing `batch`.

    >>> surviving_fraction("group", 64, 32)
    0.5
    """
    check_norm(norm, groups)
    if norm == "none":
        return 1.0
    if norm == "batch":
        if shared_t:
            return 0.0
        if batch is None or batch < 1:
            raise ValueError(
                "batch must be a positive integer for BatchNorm with per-sample t, "
                f"got {batch!r}."
            )
        return 1.0 - 1.0 / batch
    m = channels_per_group(norm, channels, groups)
    return 1.0 - 1.0 / m


def relative_variance_factor(q: float, v: float) -> float:
    """RMS of the time part after normalization, `sqrt(q / (v + q))`.

    `q` is the within-group variance of the (surviving) offsets and `v` the
    within-group variance of the features; both must be non-negative.
    """
    if q < 0 or v < 0:
        raise ValueError(f"q and v must be non-negative, got q={q!r}, v={v!r}.")
    if q + v == 0:
        return 0.0
    return math.sqrt(q / (v + q))


def normalized_time_rms(
    norm: str,
    channels: int,
    groups: int = 32,
    rho: float = 1.0,
    *,
    shared_t: bool = True,
    batch: int | None = None,
) -> float:
    """Predicted RMS of the time part of a normalized output.

    `sqrt(s * rho / (1 + s * rho))` with `s = surviving_fraction(...)` and
    `rho` the variance of the offsets over channels divided by the features'
    variance. Large `rho` gives 1 wherever anything survives; small `rho`
    gives about `sqrt(s * rho)`.
    """
    if rho < 0:
        raise ValueError(f"rho must be non-negative, got {rho!r}.")
    s = surviving_fraction(norm, channels, groups, shared_t=shared_t, batch=batch)
    return relative_variance_factor(s * rho, 1.0)
