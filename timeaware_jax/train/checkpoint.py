"""Orbax checkpoints of a TrainState, with JSON metadata beside each step."""

import os
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

from timeaware_jax.train.logging import to_jsonable
from timeaware_jax.train.state import TrainState

STATE_FIELDS = ("step", "params", "opt_state", "batch_stats", "ema_params")


def state_to_tree(state: TrainState) -> dict[str, Any]:
    """The savable part of a state: its array fields as a dict (``tx`` dropped)."""
    return {name: getattr(state, name) for name in STATE_FIELDS}


def abstract_tree(tree: Any) -> Any:
    """Shapes, dtypes and shardings of a pytree, as ``jax.ShapeDtypeStruct``.

    Leaves that already are ``ShapeDtypeStruct`` (from ``jax.eval_shape``) are
    kept; a ``sharding`` on them says where the restored arrays go.
    """

    def to_struct(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        return ocp.utils.to_shape_dtype_struct(x)

    return jax.tree.map(to_struct, tree)


class Checkpointer:
    """Save and restore ``TrainState`` checkpoints with Orbax, keeping the last few.

    Each step directory holds two items: ``state`` (the arrays of ``step``,
    ``params``, ``opt_state``, ``batch_stats`` and ``ema_params``, written
    with ``StandardSave``) and ``metadata`` (a JSON object, e.g. the config
    and the data iterator's epoch). The optimizer ``tx`` and ``ema_decay`` are
    static and not saved: they come from the template on restore.

    Saves are asynchronous: :meth:`save` returns once the arrays are copied
    off the device and the files are written in the background; :meth:`wait`
    blocks until they are committed. Multi-host runs call every method on
    every process; Orbax coordinates the writes.

    Warning:
        The checkpointer saves whatever it is given. Call
        :func:`~timeaware_jax.train.check_finite` on the metrics first, so that
        only finite states are saved and the latest checkpoint is always the
        last good one.

    Args:
        directory: where step directories are written; created if missing.
        max_to_keep: how many of the most recent checkpoints to keep (>= 1).

    A run that resumes automatically::

        ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=3)
        state = TrainState.create(params, tx, ema_decay=0.9999)
        if ckpt.latest_step() is not None:
            state = ckpt.restore(state)
            epoch = ckpt.metadata()["epoch"]
        ...
        check_finite(metrics, step)
        ckpt.save(int(state.step), state, metadata={"epoch": epoch})
        ckpt.close()
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3):
        if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int):
            raise ValueError(f"max_to_keep must be an int >= 1, got {max_to_keep!r}")
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be an int >= 1, got {max_to_keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_to_keep = max_to_keep
        # Temporary directories left by a save that crashed are removed on start.
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "metadata")
        )

    def save(
        self,
        step: int,
        state: TrainState,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Save ``state`` as checkpoint ``step``, pruning beyond ``max_to_keep``.

        Args:
            step: the checkpoint's step number (usually ``int(state.step)``).
            state: the state to save.
            metadata: JSON-serialisable extra information (numpy scalars and
                ``ConfigDict`` are converted), e.g. ``{"config": config,
                "epoch": epoch}``.

        Raises:
            ValueError: if ``step`` is negative or already saved, or
                ``metadata`` cannot be written as JSON.
        """
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        if step in self.all_steps():
            raise ValueError(
                f"a checkpoint for step {step} already exists in {self.directory}"
            )
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state_to_tree(state)),
            metadata=ocp.args.JsonSave(to_jsonable(dict(metadata or {}))),
        )
        self._manager.save(step, args=args)

    def restore(
        self, template_state: TrainState, step: int | None = None
    ) -> TrainState:
        """Restore a checkpoint into the structure, dtypes and shardings of a template.

        Args:
            template_state: a state like the saved one (e.g. freshly created
                with the same model and optimizer). Its leaves may be arrays or
                ``jax.ShapeDtypeStruct`` (``jax.eval_shape``); each restored
                array gets the leaf's sharding, so restoring straight onto a
                mesh works. ``tx`` and ``ema_decay`` are taken from it.
            step: the step to restore; the latest by default.

        Returns:
            The restored state.

        Raises:
            FileNotFoundError: if there is no checkpoint (or no such step).
            ValueError: if the checkpoint's structure, shapes or dtypes do not
                match ``template_state``.
        """
        step = self._resolve_step(step)
        target = abstract_tree(state_to_tree(template_state))
        args = ocp.args.Composite(state=ocp.args.StandardRestore(target))
        try:
            restored = self._manager.restore(step, args=args).state
        except ValueError as error:
            raise ValueError(
                f"checkpoint {step} in {self.directory} does not match "
                "template_state; build the template with the same model, "
                f"optimizer and ema_decay as the saved run. Orbax says: {error}"
            ) from error
        return template_state.replace(**restored)

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata saved with a checkpoint (the latest by default).

        Raises:
            FileNotFoundError: if there is no checkpoint (or no such step).
        """
        step = self._resolve_step(step)
        args = ocp.args.Composite(metadata=ocp.args.JsonRestore())
        return self._manager.restore(step, args=args).metadata

    def latest_step(self) -> int | None:
        """The most recent saved step, or ``None`` when there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """All kept steps, in increasing order."""
        return sorted(self._manager.all_steps())

    def wait(self) -> None:
        """Block until every pending save is committed to disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release Orbax's resources."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _resolve_step(self, step: int | None) -> int:
        self.wait()
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
            return steps[-1]
        if int(step) not in steps:
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {self.directory}; "
                f"available steps: {steps}"
            )
        return int(step)
