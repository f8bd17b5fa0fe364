"""Training infrastructure: EMA, optimizer step, checkpoints, resume, guard, logs,
and data parallelism over 8 forced CPU devices against one device."""

import json
import math
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from timeaware_jax.train import (
    Checkpointer,
    MetricWriter,
    NonFiniteError,
    TrainState,
    check_finite,
    data_sharding,
    ema_update,
    make_mesh,
    read_metrics,
    replicate,
    replicated_sharding,
    shard_batch,
)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------
# A tiny linear regression shared by the resume and sharding tests.


def make_regression(num_batches=4, batch_size=16):
    """Fixed batches of y = x @ w_true + 0.1 * noise, x in R^3, y in R^2."""
    kx, kw, kn = jr.split(jr.key(0), 3)
    x = jr.normal(kx, (num_batches, batch_size, 3))
    w_true = jr.normal(kw, (3, 2))
    y = x @ w_true + 0.1 * jr.normal(kn, (num_batches, batch_size, 2))
    return np.asarray(x), np.asarray(y)


def init_state(ema_decay=0.9):
    params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros((2,))}
    return TrainState.create(params, optax.sgd(0.1, momentum=0.9), ema_decay=ema_decay)


def regression_step(state, batch):
    def loss_fn(params):
        y_hat = batch["x"] @ params["w"] + params["b"]
        return jnp.mean((y_hat - batch["y"]) ** 2)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads), loss


def batch_at(data, step):
    x, y = data
    i = int(step) % x.shape[0]
    return {"x": x[i], "y": y[i]}


def tree_to_lists(tree):
    return jax.tree.map(lambda a: np.asarray(a).tolist(), tree)


def run_sharding_parity(num_steps=3):
    """Run in a subprocess with 8 forced CPU devices; print results as JSON."""
    devices = jax.devices()
    data = make_regression()
    out = {"num_devices": len(devices)}
    for name, mesh in (("one", make_mesh(devices[:1])), ("all", make_mesh())):
        step = jax.jit(
            regression_step,
            out_shardings=(replicated_sharding(mesh), replicated_sharding(mesh)),
        )
        state = replicate(init_state(), mesh)
        for i in range(num_steps):
            state, _ = step(state, shard_batch(batch_at(data, i), mesh))
        out[name] = tree_to_lists({"params": state.params, "ema": state.ema_params})
        out[name + "_batch_devices"] = len(
            shard_batch(batch_at(data, 0), mesh)["x"].sharding.device_set
        )
        out[name + "_params_replicated"] = state.params["w"].sharding.is_equivalent_to(
            replicated_sharding(mesh), 2
        )
    with tempfile.TemporaryDirectory() as directory:
        with Checkpointer(directory) as ckpt:  # saved from 8 devices ...
            ckpt.save(num_steps, state)
            mesh_one = make_mesh(devices[:1])
            restored = ckpt.restore(replicate(init_state(), mesh_one))
        out["restored_on_one"] = tree_to_lists(
            {"params": restored.params, "ema": restored.ema_params}
        )
        out["restored_devices"] = len(restored.params["w"].sharding.device_set)
    try:
        shard_batch({"x": np.zeros((12, 3))}, make_mesh())
        out["indivisible_error"] = None
    except ValueError as error:
        out["indivisible_error"] = str(error)
    print(json.dumps(out))


@pytest.fixture(scope="module")
def jitted_regression_step():
    return jax.jit(regression_step)


# ---------------------------------------------------------------------------
# EMA and the optimizer step.


def test_ema_update_closed_form():
    """After n updates towards constant p: ema = p + decay^n (ema0 - p)."""
    decay, n = 0.9, 25
    p = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}
    ema0 = {"w": jnp.array([4.0, 0.0, -1.0]), "b": jnp.array(-0.5)}
    ema = ema0
    for _ in range(n):
        ema = ema_update(ema, p, decay)
    expected = jax.tree.map(lambda e, q: q + decay**n * (e - q), ema0, p)
    chex_close = jax.tree.map(lambda a, b: np.allclose(a, b, rtol=1e-5), ema, expected)
    assert all(jax.tree.leaves(chex_close))


def test_train_state_ema_follows_closed_form():
    """apply_gradients with zero gradients and SGD keeps params; EMA decays."""
    decay, n = 0.8, 10
    params = {"w": jnp.arange(4.0)}
    state = TrainState.create(params, optax.sgd(0.1), ema_decay=decay)
    ema0 = {"w": jnp.full((4,), 10.0)}
    state = state.replace(ema_params=ema0)
    zeros = jax.tree.map(jnp.zeros_like, params)
    for _ in range(n):
        state = state.apply_gradients(zeros)
    expected = params["w"] + decay**n * (ema0["w"] - params["w"])
    np.testing.assert_allclose(state.ema_params["w"], expected, rtol=1e-5)
    np.testing.assert_array_equal(state.params["w"], params["w"])
    assert int(state.step) == n
    assert state.eval_params is state.ema_params


def test_apply_gradients_equals_manual_optax():
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    params = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "b": jnp.array([0.5, -0.5])}
    state = TrainState.create(params, tx, batch_stats={"mean": jnp.zeros(2)})
    opt_state = tx.init(params)
    manual = params
    for k in range(3):
        grads = jax.tree.map(lambda a, k=k: (k + 1.0) * jnp.sin(a), manual)
        updates, opt_state = tx.update(grads, opt_state, manual)
        manual = optax.apply_updates(manual, updates)
        state = state.apply_gradients(grads, batch_stats={"mean": jnp.full(2, k)})
    for a, b in zip(
        jax.tree.leaves(state.params), jax.tree.leaves(manual), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(state.batch_stats["mean"], [2.0, 2.0])
    assert int(state.step) == 3 and state.ema_params is None


def test_train_state_rejects_bad_arguments():
    with pytest.raises(ValueError, match="ema_decay"):
        TrainState.create({"w": jnp.ones(1)}, optax.sgd(0.1), ema_decay=1.5)
    with pytest.raises(ValueError, match="tx"):
        TrainState.create({"w": jnp.ones(1)}, "sgd")


# ---------------------------------------------------------------------------
# Checkpoints.


def test_checkpoint_round_trip_and_pruning(tmp_path):
    key_w, key_m = jr.split(jr.key(1))
    params = {"dense": {"kernel": jr.normal(key_w, (3, 4)), "bias": jnp.zeros(4)}}
    batch_stats = {"norm": {"mean": jr.normal(key_m, (4,)), "var": jnp.ones(4)}}
    tx = optax.adamw(1e-3)
    state = TrainState.create(params, tx, batch_stats=batch_stats, ema_decay=0.99)
    grads = jax.tree.map(jnp.ones_like, params)

    ckpt = Checkpointer(tmp_path / "ckpt", max_to_keep=2)
    assert ckpt.latest_step() is None
    with pytest.raises(FileNotFoundError):
        ckpt.restore(state)
    saved = {}
    for step in (1, 2, 3):
        state = state.apply_gradients(grads)
        ckpt.save(step, state, metadata={"epoch": np.int64(step), "lr": 1e-3})
        saved[step] = state
    ckpt.wait()
    assert ckpt.latest_step() == 3
    assert ckpt.all_steps() == [2, 3]
    with pytest.raises(ValueError, match="already exists"):
        ckpt.save(3, state)
    ckpt.close()

    # A fresh checkpointer, as after a restart; the template is a fresh state.
    template = TrainState.create(params, tx, batch_stats=batch_stats, ema_decay=0.99)
    with Checkpointer(tmp_path / "ckpt", max_to_keep=2) as reopened:
        assert reopened.latest_step() == 3
        restored = reopened.restore(template)
        older = reopened.restore(template, step=2)
        assert reopened.metadata() == {"epoch": 3, "lr": 1e-3}
        with pytest.raises(FileNotFoundError, match="available steps"):
            reopened.restore(template, step=1)
        with pytest.raises(ValueError, match="does not match template_state"):
            reopened.restore(TrainState.create(params, tx, batch_stats=batch_stats))
    assert jax.tree.structure(restored) == jax.tree.structure(saved[3])
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(saved[3]), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    np.testing.assert_array_equal(
        older.params["dense"]["kernel"], saved[2].params["dense"]["kernel"]
    )
    assert restored.tx is tx and restored.ema_decay == 0.99


def test_restore_onto_abstract_template_with_sharding(tmp_path):
    mesh = make_mesh(jax.devices()[:1])
    state = replicate(init_state(), mesh)
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(0, state)
        abstract = jax.eval_shape(init_state)
        abstract = jax.tree.map(
            lambda s: (
                jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=data_sharding(mesh))
                if s.ndim
                else jax.ShapeDtypeStruct(
                    s.shape, s.dtype, sharding=replicated_sharding(mesh)
                )
            ),
            abstract,
        )
        restored = ckpt.restore(abstract)
    assert restored.params["w"].sharding.is_equivalent_to(data_sharding(mesh), 2)
    np.testing.assert_array_equal(restored.params["w"], state.params["w"])


def test_crash_then_resume_equals_uninterrupted(tmp_path, jitted_regression_step):
    """Train 6 steps; separately train 4 with checkpoints, 'crash', resume to 6."""
    data = make_regression()
    total, crash_at = 6, 4

    state = init_state()
    for i in range(total):
        state, _ = jitted_regression_step(state, batch_at(data, i))
    uninterrupted = state

    state = init_state()
    ckpt = Checkpointer(tmp_path / "run", max_to_keep=2)
    for i in range(crash_at):
        state, loss = jitted_regression_step(state, batch_at(data, i))
        check_finite({"loss": loss}, step=i + 1)
        ckpt.save(int(state.step), state, metadata={"epoch": (i + 1) // 4})
    ckpt.close()
    del state, ckpt  # the process dies here

    ckpt = Checkpointer(tmp_path / "run", max_to_keep=2)
    start = ckpt.latest_step()
    assert start == crash_at
    state = ckpt.restore(init_state())
    assert int(state.step) == start and ckpt.metadata()["epoch"] == 1
    for i in range(start, total):
        state, _ = jitted_regression_step(state, batch_at(data, i))
    ckpt.close()

    for a, b in zip(
        jax.tree.leaves(state), jax.tree.leaves(uninterrupted), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


# ---------------------------------------------------------------------------
# Non-finite guard and metric logs.


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -np.inf])
def test_check_finite_names_the_metric(bad):
    metrics = {"loss": jnp.float32(0.5), "grad_norm": jnp.asarray(bad), "lr": 0.1}
    with pytest.raises(NonFiniteError, match="grad_norm") as info:
        check_finite(metrics, step=17)
    message = str(info.value)
    assert "step 17" in message and "last good checkpoint" in message
    assert "loss" not in message.split(":")[1].split(".")[0]
    assert info.value.names == ("grad_norm",) and info.value.step == 17
    assert isinstance(info.value, RuntimeError)


def test_check_finite_accepts_finite_and_arrays():
    check_finite({"loss": 1.0, "acc": np.float32(0.3), "nfe": 12, "name": "x"}, 1)
    with pytest.raises(NonFiniteError, match="per_class"):
        check_finite({"per_class": jnp.array([0.1, jnp.nan])}, step=2)
    with pytest.raises(NonFiniteError, match="loss"):
        check_finite({"loss": jnp.array(jnp.inf, jnp.bfloat16)}, step=3)


def test_metric_writer_round_trip(tmp_path):
    path = tmp_path / "logs" / "metrics.jsonl"
    with MetricWriter(path) as writer:
        writer.write(1, {"loss": jnp.float32(0.25), "nfe": np.int64(26)})
        writer.write(2, {"loss": jnp.array(0.5, jnp.bfloat16), "acc": np.float64(0.75)})
        with pytest.raises(ValueError, match="step"):
            writer.write(3, {"step": 3})
    with MetricWriter(path) as writer:  # a resumed run appends
        writer.write(3, {"loss": float("nan"), "hist": jnp.arange(3)})
    records = read_metrics(path)
    assert records[:2] == [
        {"step": 1, "loss": 0.25, "nfe": 26},
        {"step": 2, "loss": 0.5, "acc": 0.75},
    ]
    assert type(records[0]["loss"]) is float and type(records[0]["nfe"]) is int
    assert records[2]["step"] == 3 and math.isnan(records[2]["loss"])
    assert records[2]["hist"] == [0, 1, 2]
    with pytest.raises(ValueError, match="closed"):
        writer.write(4, {"loss": 1.0})


def test_read_metrics_drops_the_lines_a_resumed_run_replays(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricWriter(path) as writer:  # the first attempt, checkpointed at 2
        for step in (1, 2, 3):
            writer.write(step, {"loss": float(step)})
        writer.write(3, {"eval_loss": 3.0})  # same step, other keys: kept
        writer.write(4, {"loss": 4.0})
    with MetricWriter(path) as writer:  # the resumed run logs 3 and 4 again
        writer.write(3, {"loss": 30.0})
        writer.write(3, {"eval_loss": 31.0})
        writer.write(4, {"loss": 40.0})
        writer.write(4, {"loss": 41.0})  # the same step and keys again
    steps = [(r["step"], r.get("loss", r.get("eval_loss"))) for r in read_metrics(path)]
    assert steps == [(1, 1.0), (2, 2.0), (3, 30.0), (3, 31.0), (4, 41.0)]
    assert len(read_metrics(path, replayed=True)) == 9


# ---------------------------------------------------------------------------
# Data parallelism.


def test_shard_batch_on_one_device_mesh():
    mesh = make_mesh(jax.devices()[:1])
    batch = shard_batch({"x": np.ones((5, 2), np.float32), "y": np.arange(5)}, mesh)
    assert batch["x"].shape == (5, 2) and batch["y"].shape == (5,)
    assert batch["x"].sharding.is_equivalent_to(data_sharding(mesh), 2)
    with pytest.raises(ValueError, match="leading batch axis"):
        shard_batch({"x": np.float32(1.0)}, mesh)
    with pytest.raises(ValueError, match="devices"):
        make_mesh([])


def test_sharded_step_on_8_devices_matches_one_device(jitted_regression_step):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    code = (
        f"import sys; sys.path.insert(0, {TESTS_DIR!r}); "
        "import test_train_infra as t; t.run_sharding_parity()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out["num_devices"] == 8
    assert out["all_batch_devices"] == 8 and out["one_batch_devices"] == 1
    assert out["all_params_replicated"]
    assert "divisible" in out["indivisible_error"]
    assert "(12, 3)" in out["indivisible_error"]
    assert out["restored_devices"] == 1

    # The same three steps in this process, on its single default device.
    data = make_regression()
    state = init_state()
    for i in range(3):
        state, _ = jitted_regression_step(state, batch_at(data, i))
    here = {"params": state.params, "ema": state.ema_params}
    for name in ("one", "all", "restored_on_one"):
        for a, b in zip(
            jax.tree.leaves(out[name]),
            jax.tree.leaves(tree_to_lists(here)),
            strict=True,
        ):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
