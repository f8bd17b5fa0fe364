"""The neural-ODE building blocks against closed forms and references."""

import functools

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.scipy.linalg import expm

from timeaware_jax.nn import conv_nhwc, im2col_conv
from timeaware_jax.node import (
    ODEBlock,
    ODEFunc,
    ODENet,
    count_evaluations,
    make_solver,
    mark_backward,
    read_backward_count,
    reset_backward_count,
    solve_ode,
)

A = jnp.array([[-0.5, 1.0, 0.0], [-1.0, -0.5, 0.3], [0.2, 0.0, -0.8]])
Y0 = jnp.array([1.0, -0.5, 0.25])
W = jnp.array([0.3, -1.2, 0.7])

# solver, dt0, tolerance on y(1)
LINEAR_CASES = [
    ("dopri5", None, 1e-5),
    ("tsit5", None, 1e-5),
    ("heun", None, 1e-4),
    ("rk4", 0.05, 1e-5),
    ("euler", 0.01, 2e-2),
]


@pytest.mark.parametrize(("solver", "dt0", "tol"), LINEAR_CASES)
def test_linear_ode_matches_matrix_exponential_and_nfe_formula(solver, dt0, tol):
    calls = []

    def f(t, y, args):
        jax.debug.callback(lambda: calls.append(1))
        return args @ y

    ys, nfe, failed = solve_ode(
        f, Y0, A, solver=solver, dt0=dt0, rtol=1e-7, atol=1e-7, max_steps=4096
    )
    jax.effects_barrier()
    np.testing.assert_allclose(ys[-1], expm(A) @ Y0, atol=tol)
    assert not bool(failed)
    assert int(nfe) == len(calls)


def test_nfe_formula_per_solver():
    assert int(count_evaluations("dopri5", jnp.array(4))) == 25
    assert int(count_evaluations("tsit5", jnp.array(4))) == 25
    assert int(count_evaluations("heun", jnp.array(4))) == 8
    assert int(count_evaluations("rk4", jnp.array(4))) == 16
    assert int(count_evaluations("euler", jnp.array(4))) == 4


def _linear(t, y, args):
    return args @ y


def _linear_marked(t, y, args):
    return args @ mark_backward(y)


@functools.partial(jax.jit, static_argnums=1)
def _loss(a, adjoint):
    ys, _, _ = solve_ode(_linear, Y0, a, rtol=1e-7, atol=1e-7, adjoint=adjoint)
    return jnp.dot(W, ys[-1])


def test_adjoints_agree_with_each_other_and_finite_differences():
    grad_recursive = jax.grad(_loss)(A, "recursive")
    grad_backsolve = jax.grad(_loss)(A, "backsolve")
    np.testing.assert_allclose(grad_recursive, grad_backsolve, rtol=1e-4, atol=1e-5)

    # Central differences on a few entries (float32: step 1e-2, O(eps^2) error).
    eps = 1e-2
    for i, j in [(0, 0), (1, 2), (2, 0)]:
        e = jnp.zeros_like(A).at[i, j].set(eps)
        fd = (_loss(A + e, "recursive") - _loss(A - e, "recursive")) / (2 * eps)
        np.testing.assert_allclose(grad_recursive[i, j], fd, rtol=2e-3, atol=2e-4)


def test_backward_nfe_is_counted_for_both_adjoints():
    def loss(a, adjoint):
        ys, nfe, _ = solve_ode(_linear_marked, Y0, a, adjoint=adjoint)
        return jnp.dot(W, ys[-1]), nfe

    counts = {}
    for adjoint in ("recursive", "backsolve"):
        reset_backward_count()
        _, nfe = jax.grad(loss, has_aux=True)(A, adjoint)
        counts[adjoint] = (read_backward_count(), int(nfe))
    backward, forward = counts["recursive"]
    # Discretise-then-optimise transposes every forward evaluation once.
    assert backward == forward
    # The continuous adjoint runs its own adaptive solve backwards in time.
    assert counts["backsolve"][0] > 0


def test_max_steps_exceeded_raises_a_clear_error():
    with pytest.raises(Exception, match="max_steps=2"):
        ys, _, _ = solve_ode(_linear, Y0, 50 * A, max_steps=2)
        jax.block_until_ready(ys)
    _, _, failed = solve_ode(_linear, Y0, 50 * A, max_steps=2, throw=False)
    assert bool(failed)


def test_im2col_convolution_equals_xla_convolution():
    x = jr.normal(jr.key(0), (2, 6, 6, 5))
    kernel = jr.normal(jr.key(1), (3, 3, 5, 4))
    np.testing.assert_allclose(
        jax.jit(im2col_conv, static_argnums=2)(x, kernel, 1),
        jax.jit(conv_nhwc, static_argnums=(2, 3, 4))(x, kernel, 1, 1, False),
        atol=1e-5,
    )


def _parameter_count(model, shape):
    variables = jax.eval_shape(model.init, jr.key(0), jnp.zeros(shape))
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


def test_classifier_parameter_count_matches_torchdiffeq_odenet_mnist():
    model = ODENet(stem="conv", features=64, norm="group", groups=32)
    assert _parameter_count(model, (1, 28, 28, 1)) == 208_266


def test_parameter_count_equals_pytorch_model():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class ConcatConv2d(tnn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.layer = tnn.Conv2d(cin + 1, cout, 3, 1, 1)

    def gn(c):
        return tnn.GroupNorm(32, c)

    class ODEfunc(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm1, self.norm2, self.norm3 = gn(c), gn(c), gn(c)
            self.conv1, self.conv2 = ConcatConv2d(c, c), ConcatConv2d(c, c)

    stem = [tnn.Conv2d(1, 64, 3, 1), gn(64), tnn.Conv2d(64, 64, 4, 2, 1)]
    stem += [gn(64), tnn.Conv2d(64, 64, 4, 2, 1)]
    net = tnn.ModuleList([*stem, ODEfunc(64), gn(64), tnn.Linear(64, 10)])
    expected = sum(p.numel() for p in net.parameters())

    model = ODENet(stem="conv", features=64, norm="group", groups=32)
    assert _parameter_count(model, (1, 28, 28, 1)) == expected


@pytest.mark.parametrize(
    ("stem", "shape", "classes", "conditioning"),
    [
        ("conv", (2, 28, 28, 1), 10, "additive"),
        ("res", (2, 32, 32, 3), 100, "positional"),
        ("none", (2, 8, 8, 1), 10, "scale_shift"),
    ],
)
def test_classifier_shapes(stem, shape, classes, conditioning):
    model = ODENet(
        num_classes=classes, stem=stem, features=8, groups=4, conditioning=conditioning
    )
    x = jnp.zeros(shape)
    variables = jax.eval_shape(model.init, jr.key(0), x)
    logits, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, mutable=["ode_stats"]), variables, x
    )
    assert logits.shape == (2, classes)
    assert state["ode_stats"]["ode_block"]["nfe"].shape == ()
    y0 = jax.eval_shape(
        lambda v, x: model.apply(v, x, method="stem_features"), *[variables, x]
    )
    # torchdiffeq's stems: "conv" 28 -> 6, 32 -> 7; "res" 32 -> 8; "none" keeps.
    side = {("conv", 28): 6, ("res", 32): 8, ("none", 8): 8}[stem, shape[1]]
    assert y0.shape == (2, side, side, 8)


def test_batchnorm_statistics_inside_the_ode_block():
    block = ODEBlock(features=4, norm="batch", solver="euler", dt0=0.5)
    y0 = jr.normal(jr.key(0), (6, 5, 5, 4)) * 2.0 + 1.0
    variables = block.init(jr.key(1), y0)
    func = block.vector_field()

    # Training mode: every evaluation uses its own batch statistics.
    y1, updated = block.apply(
        variables, y0, train=True, mutable=["batch_stats", "ode_stats"]
    )

    def f(t, y, args):
        return func.apply(args, t, y, train=True, mutable=["batch_stats"])[0]

    vf_variables = {
        "params": variables["params"]["vector_field"],
        "batch_stats": variables["batch_stats"]["vector_field"],
    }
    ys, _, _ = solve_ode(
        f, y0, vf_variables, ts=jnp.array([0.5, 1.0]), solver="euler", dt0=0.5
    )
    np.testing.assert_allclose(y1, ys[-1], atol=1e-5)

    # Running averages: one update from the midpoint evaluation.
    _, expected = func.apply(
        vf_variables, 0.5, ys[0], train=True, mutable=["batch_stats"]
    )
    got = updated["batch_stats"]["vector_field"]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
        got,
        expected["batch_stats"],
    )
    # And the mean of norm1 moved from 0 towards the state's mean (about 1).
    mean = got["norm1"]["batch_norm"]["mean"]
    np.testing.assert_allclose(mean, 0.1 * ys[0].mean(axis=(0, 1, 2)), atol=1e-5)

    # Inference mode reads the running averages and changes nothing.
    _, state = block.apply(variables, y0, train=False, mutable=["batch_stats"])
    assert "batch_stats" not in state or jax.tree.all(
        jax.tree.map(jnp.array_equal, state["batch_stats"], variables["batch_stats"])
    )


def test_bad_arguments_raise_value_errors():
    y = jnp.zeros((1, 4, 4, 8))
    with pytest.raises(ValueError, match="solver"):
        ODEBlock(features=8, groups=4, solver="rk45").init(jr.key(0), y)
    with pytest.raises(ValueError, match="dt0"):
        make_solver("rk4", adaptive=True)
    with pytest.raises(ValueError, match="adjoint"):
        ODEBlock(features=8, groups=4, adjoint="magic").init(jr.key(0), y)
    with pytest.raises(ValueError, match="groups"):
        ODEFunc(features=8, groups=3).init(jr.key(0), 0.0, y)
    with pytest.raises(ValueError, match="conditioning"):
        ODEFunc(features=8, groups=4, conditioning="film").init(jr.key(0), 0.0, y)
    with pytest.raises(ValueError, match="stem"):
        ODENet(stem="big").init(jr.key(0), jnp.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="max_steps"):
        solve_ode(lambda t, y, a: y, jnp.ones(2), max_steps=0)
    assert isinstance(make_solver("dopri5", adaptive=True), diffrax.Dopri5)
