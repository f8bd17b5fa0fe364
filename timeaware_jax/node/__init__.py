"""Neural ODEs on diffrax: the ODE-Net vector field, ODE block and classifier.

- `ODEFunc`: torchdiffeq's vector field with the remedies as an argument.
- `ODEBlock`, `solve_ode`: integration over [0, 1] with diffrax, NFE counting.
- `ODENet`: the `odenet_mnist` classifier (stems "conv", "res", "none").
- `RK4`, `make_solver`, `count_evaluations`: solvers and their NFE.
- `load_checkpoint(workdir)`: a trained classifier from `timeaware train-node`.
"""

from timeaware_jax.node.classifier import (
    STEMS,
    ODENet,
    ResBlock,
    vector_field_variables,
)
from timeaware_jax.node.counting import (
    mark_backward,
    read_backward_count,
    reset_backward_count,
)
from timeaware_jax.node.ode_block import (
    ADJOINTS,
    ODEBlock,
    ODESolveError,
    check_solve_args,
    make_adjoint,
    solve_failure_message,
    solve_ode,
)
from timeaware_jax.node.solvers import (
    ADAPTIVE_SOLVERS,
    RK4,
    SOLVERS,
    count_evaluations,
    make_solver,
)
from timeaware_jax.node.vector_field import ODEFunc, check_vector_field_args


def load_checkpoint(workdir: str):
    """Load the latest checkpoint of a `train_and_evaluate` run.

    Returns `(model, variables, config)`: the `ODENet`, a dict with `params`
    (and `batch_stats` for BatchNorm) and the run's `ml_collections` config.
    Defined in `timeaware_jax.train.node`; imported lazily here because the
    training code sits above the models.

    Raises:
        FileNotFoundError: when `workdir` holds no config or no checkpoint.
    """
    from timeaware_jax.train.node import load_checkpoint as _load

    return _load(workdir)


__all__ = [
    "ADAPTIVE_SOLVERS",
    "ADJOINTS",
    "RK4",
    "SOLVERS",
    "STEMS",
    "ODEBlock",
    "ODEFunc",
    "ODESolveError",
    "ODENet",
    "ResBlock",
    "check_solve_args",
    "check_vector_field_args",
    "count_evaluations",
    "load_checkpoint",
    "make_adjoint",
    "make_solver",
    "mark_backward",
    "read_backward_count",
    "reset_backward_count",
    "solve_failure_message",
    "solve_ode",
    "vector_field_variables",
]
