"""Training infrastructure: state with EMA, sharding, checkpoints, metrics, guard.

Example:
    >>> from timeaware_jax.train import TrainState, make_mesh, shard_batch
"""

from timeaware_jax.train.checkpoint import Checkpointer
from timeaware_jax.train.ema import ema_update
from timeaware_jax.train.guard import NonFiniteError, check_finite
from timeaware_jax.train.logging import MetricWriter, read_metrics, to_jsonable
from timeaware_jax.train.sharding import (
    data_sharding,
    initialize_distributed,
    local_device_count,
    make_mesh,
    replicate,
    replicated_sharding,
    shard_batch,
)
from timeaware_jax.train.state import TrainState

__all__ = [
    "Checkpointer",
    "MetricWriter",
    "NonFiniteError",
    "TrainState",
    "check_finite",
    "data_sharding",
    "ema_update",
    "initialize_distributed",
    "local_device_count",
    "make_mesh",
    "read_metrics",
    "replicate",
    "replicated_sharding",
    "shard_batch",
    "to_jsonable",
]
