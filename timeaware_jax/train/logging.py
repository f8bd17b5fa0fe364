"""Metrics as JSON lines: one object per logging step."""

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np


def to_jsonable(value: Any) -> Any:
    """Convert metric values and configs to plain JSON types.

    Scalars of numpy or JAX become Python ``float`` (``int`` for integer and
    ``bool`` for boolean dtypes); larger arrays become nested lists; mappings
    (including ``ml_collections.ConfigDict``, through ``to_dict``) and
    sequences are converted recursively. Non-finite floats stay ``nan`` /
    ``inf``, which ``json`` writes as ``NaN`` / ``Infinity``.

    Args:
        value: a metric value, a config or a nested container of them.

    Returns:
        The value built from ``dict``, ``list``, ``str``, ``int``, ``float``,
        ``bool`` and ``None`` only.

    Raises:
        ValueError: if a leaf has a type with no JSON form.

    Example:
        >>> import numpy as np
        >>> to_jsonable({"loss": np.float32(0.5), "shape": (2, 3)})
        {'loss': 0.5, 'shape': [2, 3]}
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "__array__") or isinstance(value, np.generic):
        array = np.asarray(value)
        if jnp.issubdtype(array.dtype, jnp.floating) and array.dtype.kind != "f":
            array = array.astype(np.float32)  # bfloat16 and other ml_dtypes floats
        if array.dtype.kind in "biuf":
            return array.item() if array.ndim == 0 else array.tolist()
    raise ValueError(
        f"cannot write a value of type {type(value).__name__} as JSON: {value!r}; "
        "expected numbers, arrays, strings, lists or dicts"
    )


class MetricWriter:
    """Append metrics to a JSON-lines file, one ``{"step": ..., ...}`` per line.

    Each :meth:`write` appends one line and flushes it, so a crashed run keeps
    everything logged before the crash and a resumed run continues the file.

    Warning:
        Every process that creates a writer writes its own lines. In a
        multi-host run create it on ``jax.process_index() == 0`` only.

    Args:
        path: the file to append to; parent directories are created.

    Example:
        >>> with MetricWriter("/tmp/metrics.jsonl") as writer:
        ...     writer.write(10, {"loss": jnp.float32(0.25)})
        >>> read_metrics("/tmp/metrics.jsonl")[-1]
        {'step': 10, 'loss': 0.25}
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Append one line ``{"step": step, **metrics}``.

        Args:
            step: the training step the metrics belong to.
            metrics: names to scalar (or small array) values; numpy and JAX
                scalars are converted to Python numbers.

        Raises:
            ValueError: if ``metrics`` has a key ``"step"`` or a value with no
                JSON form, or the writer is closed.
        """
        if self._file.closed:
            raise ValueError(f"MetricWriter for {self.path} is closed")
        if "step" in metrics:
            raise ValueError("metrics must not contain the key 'step'; pass it as step")
        record = {"step": int(step), **to_jsonable(dict(metrics))}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; further writes raise ``ValueError``."""
        self._file.close()

    def __enter__(self) -> "MetricWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def read_metrics(path: str | os.PathLike, replayed: bool = False) -> list[dict]:
    """Read a JSON-lines metrics file back into a list of dicts.

    A run that resumes from a checkpoint at step `s` logs the steps after `s`
    again. By default the later lines supersede the earlier ones: a record
    whose step is below one already read drops every earlier record at that
    step or later, so the history is the one that led to the final state.

    Args:
        path: a file written by :class:`MetricWriter`.
        replayed: keep the superseded records too, in file order.

    Returns:
        One dict per line, in file order; blank lines are skipped, and so
        are superseded lines unless `replayed`.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    records: list[dict] = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.strip():
                continue
            record = json.loads(line)
            if not replayed and records and _starts_replay(records, record):
                step = record["step"]
                records = [r for r in records if r.get("step", -math.inf) < step]
            records.append(record)
    return records


def _starts_replay(records: list[dict], record: dict) -> bool:
    """Whether `record` goes back to a step that `records` already logged.

    Lines at one step with different keys (a training and an evaluation
    record) are not a replay; a step below the last one, or the same step
    with the same keys again, is.
    """
    step, last = record.get("step"), records[-1].get("step")
    if step is None or last is None:
        return False
    if step < last:
        return True
    if step > last:
        return False
    for earlier in reversed(records):
        if earlier.get("step") != step:
            return False
        if earlier.keys() == record.keys():
            return True
    return False
