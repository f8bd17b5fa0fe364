"""A host-side count of the vector-field VJPs run by a backward pass.

Diffrax returns the step statistics of the forward solve, so the forward NFE
follows from `sol.stats["num_steps"]` (`timeaware_jax.node.solvers`). The
backward pass is different: `BacksolveAdjoint` solves the adjoint equations
inside a custom VJP and drops that solve's statistics, and
`RecursiveCheckpointAdjoint` differentiates through the solver's loop. Both,
however, apply the VJP of the vector field once per evaluation of the
backward dynamics, so we count those.

`mark_backward(y)` is the identity on the way forward; its VJP fires a
`jax.debug.callback` that adds one to a process-wide counter. Wrap the state at
the top of the vector field and read the count after the gradient is done:

    reset_backward_count()
    grads = jax.grad(loss)(params)
    nfe_backward = read_backward_count()   # waits for pending callbacks

Warning:
    The counter is process-wide state: two gradients computed concurrently
    share it. Under a multi-device `jit` the callback runs once per program,
    not once per device (`partitioned=False`). Forward NFE needs none of this.
"""

import jax
from jaxtyping import Array, PyTree

_COUNT = [0]


def _increment() -> None:
    _COUNT[0] += 1


@jax.custom_vjp
def mark_backward(y: PyTree[Array]) -> PyTree[Array]:
    """Identity whose VJP adds one to the backward-evaluation counter.

    Example:
        >>> import jax.numpy as jnp
        >>> reset_backward_count()
        >>> _ = jax.grad(lambda y: (mark_backward(y) ** 2).sum())(jnp.ones(3))
        >>> read_backward_count()
        1
    """
    return y


def _mark_fwd(y):
    return y, None


def _mark_bwd(_, cotangent):
    jax.debug.callback(_increment)
    return (cotangent,)


mark_backward.defvjp(_mark_fwd, _mark_bwd)


def reset_backward_count() -> None:
    """Set the backward-evaluation counter to zero."""
    jax.effects_barrier()
    _COUNT[0] = 0


def read_backward_count() -> int:
    """The number of marked VJPs run since the last reset (waits for them)."""
    jax.effects_barrier()
    return _COUNT[0]
