"""Data parallelism with a device mesh and named shardings.

Training steps are plain ``jax.jit`` functions: the state is replicated over a
one-axis mesh named ``"data"`` and every batch is split along its leading axis
over that axis. XLA inserts the gradient all-reduce itself, so the same step
function runs on one CPU, eight forced CPU devices, a GPU host or a TPU pod.

A training loop uses it like this::

    mesh = make_mesh()
    state = replicate(TrainState.create(params, tx), mesh)
    step = jax.jit(train_step, out_shardings=replicated_sharding(mesh))
    for images, labels in batches(dataset, batch_size, key):
        batch = shard_batch({"images": images, "labels": labels}, mesh)
        state, metrics = step(state, batch)

Inside ``train_step`` the loss is a plain mean over the global batch; the
compiled program computes each device's share and all-reduces the gradients.
BatchNorm statistics are likewise those of the global batch, as on one device,
so no ``axis_name`` is needed and results match a single-device run up to the
order of floating-point sums.
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any

DATA_AXIS = "data"


def initialize_distributed(**kwargs: Any) -> None:
    """Start JAX's multi-host runtime; call once per process before anything else.

    A thin wrapper around ``jax.distributed.initialize(**kwargs)``. On Cloud
    TPU pods, GKE and SLURM the coordinator address, process count and
    process id are detected from the environment, so no argument is needed;
    elsewhere pass ``coordinator_address``, ``num_processes`` and
    ``process_id``. After it returns, ``jax.devices()`` lists the devices of
    every host and :func:`make_mesh` spans them all. On a single host there is
    no need to call it.

    Args:
        **kwargs: forwarded to ``jax.distributed.initialize``.

    Example:
        >>> initialize_distributed()  # on every host of a TPU pod
        >>> mesh = make_mesh()
    """
    jax.distributed.initialize(**kwargs)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``"data"`` over the given devices.

    Args:
        devices: the devices to use, all of every process by default
            (``jax.devices()``).

    Returns:
        A ``jax.sharding.Mesh`` of shape ``(len(devices),)``.

    Raises:
        ValueError: if ``devices`` is empty.

    Example:
        >>> make_mesh(jax.devices()[:1]).shape
        OrderedDict([('data', 1)])
    """
    devices = jax.devices() if devices is None else list(devices)
    if len(devices) == 0:
        raise ValueError("devices must hold at least one device, got an empty list")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that splits an array's leading (batch) axis over ``"data"``.

    Args:
        mesh: a mesh from :func:`make_mesh`.

    Returns:
        ``NamedSharding(mesh, PartitionSpec("data"))``.
    """
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy of an array on every device.

    Args:
        mesh: a mesh from :func:`make_mesh`.

    Returns:
        ``NamedSharding(mesh, PartitionSpec())``.
    """
    return NamedSharding(mesh, PartitionSpec())


def local_device_count(mesh: Mesh) -> int:
    """The number of devices of ``mesh`` that belong to this process."""
    index = jax.process_index()
    return sum(device.process_index == index for device in mesh.devices.flat)


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """Put a pytree of host arrays onto ``mesh``, split along the leading axis.

    Each process passes its own part of the global batch (on one host, the
    whole batch). The leading axis of every leaf is split evenly over this
    process's devices of the mesh, and the global array has leading size
    ``local_batch * process_count``. Built on
    ``jax.make_array_from_process_local_data``, so it works unchanged on
    multi-host pods.

    Args:
        batch: a pytree of arrays (numpy or JAX), each of shape ``[B, ...]``
            with the same ``B`` for this process.
        mesh: a mesh from :func:`make_mesh`.

    Returns:
        A pytree of global ``jax.Array`` with sharding ``data_sharding(mesh)``.

    Raises:
        ValueError: if a leaf is a scalar, or its leading size is not divisible
            by the number of local devices of the mesh.

    Example:
        >>> mesh = make_mesh()
        >>> x = shard_batch(np.zeros((8, 3), np.float32), mesh)
        >>> x.shape
        (8, 3)
    """
    sharding = data_sharding(mesh)
    n_local = local_device_count(mesh)

    def put(path, x):
        x = np.asarray(x)
        name = jax.tree_util.keystr(path) or "batch"
        if x.ndim == 0:
            raise ValueError(
                f"shard_batch needs arrays with a leading batch axis, got a scalar "
                f"at {name}"
            )
        if x.shape[0] % n_local != 0:
            raise ValueError(
                f"batch size of {name} must be divisible by the number of local "
                f"devices ({n_local}), got shape {x.shape}; choose a batch size "
                f"that is a multiple of {n_local}"
            )
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map_with_path(put, batch)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place a pytree (e.g. a ``TrainState``) fully replicated on ``mesh``.

    Args:
        tree: a pytree of arrays, identical on every process.
        mesh: a mesh from :func:`make_mesh`.

    Returns:
        The pytree with every leaf sharded as ``replicated_sharding(mesh)``.
    """
    return jax.device_put(tree, replicated_sharding(mesh))
