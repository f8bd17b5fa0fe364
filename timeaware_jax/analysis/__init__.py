"""The vanishing-embedding analysis: pure functions over models and parameters.

- `theory`: closed-form survival (`surviving_fraction`, `normalized_time_rms`).
- `exact`: parameter-level survival of a layer's time field, no data needed.
- `layers`: `time_layers` finds every time-dependent layer of a model.
- `probe`: `probe_time_variance`, the empirical per-layer probe for any Flax
  model, and `time_variance_ratio`.
- `report`: `format_table` and `plot_depth`.
"""

from timeaware_jax.analysis.exact import (
    Survival,
    center_over_statistics_set,
    concat_conv_survival,
    concat_conv_time_field,
    field_survival,
    offset_survival,
    offset_time_field,
)
from timeaware_jax.analysis.layers import TimeLayer, time_layers
from timeaware_jax.analysis.probe import (
    ProbeResult,
    ProbeRow,
    probe_time_variance,
    time_variance_ratio,
)
from timeaware_jax.analysis.report import depth_profile, format_table, plot_depth
from timeaware_jax.analysis.theory import (
    channels_per_group,
    normalized_time_rms,
    relative_variance_factor,
    surviving_fraction,
)

__all__ = [
    "ProbeResult",
    "ProbeRow",
    "Survival",
    "TimeLayer",
    "center_over_statistics_set",
    "channels_per_group",
    "concat_conv_survival",
    "concat_conv_time_field",
    "depth_profile",
    "field_survival",
    "format_table",
    "normalized_time_rms",
    "offset_survival",
    "offset_time_field",
    "plot_depth",
    "probe_time_variance",
    "relative_variance_factor",
    "surviving_fraction",
    "time_layers",
    "time_variance_ratio",
]
