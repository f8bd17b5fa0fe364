"""Training state: parameters, optimizer state, batch statistics and an EMA."""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int

from timeaware_jax.train.ema import ema_update, validate_decay

PyTree = Any


class TrainState(flax.struct.PyTreeNode):
    """Everything a training step reads and writes, as one pytree.

    The array fields (``step``, ``params``, ``opt_state``, ``batch_stats``,
    ``ema_params``) are pytree children, so a ``TrainState`` passes through
    ``jax.jit``, ``jax.device_put`` and Orbax like any other pytree. The
    optimizer ``tx`` and ``ema_decay`` are static: changing them changes the
    compiled function.

    With ``ema_decay`` set, every :meth:`apply_gradients` also updates an
    exponential moving average of the parameters::

        ema_params <- ema_decay * ema_params + (1 - ema_decay) * params_new

    Attributes:
        step: number of optimizer updates applied, an int32 scalar array.
        params: the model parameters (a Flax ``params`` collection).
        opt_state: the optax state of ``tx``.
        batch_stats: the Flax ``batch_stats`` collection, ``{}`` when the model
            has no BatchNorm.
        ema_params: the moving average of ``params``, or ``None`` without EMA.
        ema_decay: the EMA decay rate in ``[0, 1)``, or ``None``.
        tx: the optax gradient transformation.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> state = TrainState.create({"w": jnp.ones(2)}, optax.sgd(0.1))
        >>> state = state.apply_gradients({"w": jnp.ones(2)})
        >>> int(state.step), state.params["w"]
        (1, Array([0.9, 0.9], dtype=float32))
    """

    step: Int[Array, ""]
    params: PyTree
    opt_state: optax.OptState
    batch_stats: PyTree
    ema_params: PyTree | None
    ema_decay: float | None = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(
        cls,
        params: PyTree,
        tx: optax.GradientTransformation,
        batch_stats: PyTree | None = None,
        ema_decay: float | None = None,
    ) -> "TrainState":
        """Build the state at step 0.

        Args:
            params: the initial model parameters.
            tx: the optax transformation; its state is ``tx.init(params)``.
            batch_stats: the initial ``batch_stats`` collection; ``None`` for
                models without BatchNorm (stored as ``{}``).
            ema_decay: the EMA decay in ``[0, 1)``, or ``None`` to keep no
                moving average. The average starts at ``params``.

        Returns:
            A ``TrainState`` with ``step == 0``.

        Raises:
            ValueError: if ``tx`` is not an optax transformation or
                ``ema_decay`` is outside ``[0, 1)``.
        """
        if not isinstance(tx, optax.GradientTransformation):
            raise ValueError(
                f"tx must be an optax.GradientTransformation, got {type(tx).__name__}"
            )
        if ema_decay is not None:
            ema_decay = validate_decay(ema_decay)
        # A copy, so that donating params in a jitted step leaves the EMA intact.
        ema_params = None if ema_decay is None else jax.tree.map(jnp.array, params)
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            batch_stats={} if batch_stats is None else batch_stats,
            ema_params=ema_params,
            ema_decay=ema_decay,
            tx=tx,
        )

    def apply_gradients(
        self, grads: PyTree, batch_stats: PyTree | None = None
    ) -> "TrainState":
        """Apply one optimizer update, bump the step and update the EMA.

        The update is optax's::

            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)

        followed, when ``ema_decay`` is set, by
        ``ema_params = ema_update(ema_params, params, ema_decay)`` on the new
        parameters.

        Args:
            grads: gradients with the structure of ``params``.
            batch_stats: the new ``batch_stats`` collection returned by a
                ``mutable=["batch_stats"]`` apply; ``None`` keeps the current one.

        Returns:
            The new state.
        """
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        params = optax.apply_updates(params=self.params, updates=updates)
        ema_params = self.ema_params
        if self.ema_decay is not None:
            ema_params = ema_update(ema_params, params, self.ema_decay)
        return self.replace(
            step=self.step + 1,
            params=params,
            opt_state=opt_state,
            batch_stats=self.batch_stats if batch_stats is None else batch_stats,
            ema_params=ema_params,
        )

    @property
    def eval_params(self) -> PyTree:
        """The parameters to evaluate with: the EMA when kept, else ``params``."""
        return self.params if self.ema_params is None else self.ema_params
