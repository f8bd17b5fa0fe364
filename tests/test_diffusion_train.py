"""DDPM training: real steps on the digits, resume, EMA, and data parallelism."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.random as jr
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from timeaware_jax.cli import main as cli_main
from timeaware_jax.commands.config_file import apply_overrides, load_config
from timeaware_jax.diffusion import load_checkpoint
from timeaware_jax.train import read_metrics
from timeaware_jax.train.ddpm import (
    create_train_state,
    make_train_step,
    train_and_evaluate,
)
from timeaware_jax.train.sharding import make_mesh, replicated_sharding

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "experiments" / "configs" / "ddpm_digits.py")
TINY = [
    "model.ch=8",
    "model.ch_mult=(1,)",
    "model.groups=2",
    "model.attn_resolutions=()",
    "optim.batch_size=16",
    "optim.ema_decay=0.9",
    "log_every=1",
    "eval_every=0",
    "sample_every=0",
    "checkpoint_every=2",
    "sample.num_images=4",
    "sample.sampler='ddim'",
    "sample.num_steps=2",
]


def tiny_config(num_train_steps):
    config = load_config(CONFIG + ":quick")
    apply_overrides(config, TINY + [f"num_train_steps={num_train_steps}"])
    return config


def _params(state_or_params):
    return jax.tree.map(np.asarray, state_or_params)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two steps, then resumed to four; and four uninterrupted."""
    resumed = tmp_path_factory.mktemp("resumed")
    straight = tmp_path_factory.mktemp("straight")
    first = train_and_evaluate(tiny_config(2), resumed)
    first_params = _params(first.params)
    final_resumed = train_and_evaluate(tiny_config(4), resumed)
    final_straight = train_and_evaluate(tiny_config(4), straight)
    return dict(
        resumed=resumed,
        first_params=first_params,
        final_resumed=final_resumed,
        final_straight=final_straight,
    )


def test_real_steps_write_metrics_checkpoints_and_samples(runs):
    workdir = runs["resumed"]
    records = read_metrics(workdir / "metrics.jsonl")
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [1, 2, 3, 4]
    assert all(
        np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in records if "loss" in r
    )
    assert any("eval_loss" in r for r in records)
    assert sorted(os.listdir(workdir / "checkpoints"))[-1].endswith("4")
    assert (workdir / "samples" / "step_00000004.png").exists()
    assert json.loads((workdir / "config.json").read_text())["data"]["name"] == "digits"


def test_resumed_equals_uninterrupted(runs):
    a, b = runs["final_resumed"], runs["final_straight"]
    assert int(a.step) == int(b.step) == 4
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7),
        _params(a.params),
        _params(b.params),
    )
    changed = jax.tree.map(
        lambda x, y: bool(np.any(x != y)), runs["first_params"], _params(a.params)
    )
    assert any(jax.tree.leaves(changed))


def test_load_checkpoint_and_sample_command(runs, tmp_path):
    model, params, schedule, config = load_checkpoint(runs["resumed"])
    assert model.image_size == 8 and schedule.num_timesteps == 1000
    jax.tree.map(
        np.testing.assert_array_equal,
        _params(params),
        _params(runs["final_resumed"].ema_params),
    )
    out = tmp_path / "grid.png"
    argv = ["sample", "--workdir", str(runs["resumed"]), "--num", "4"]
    argv += ["--sampler", "ddim", "--steps", "2", "--out", str(out)]
    assert cli_main(argv) == 0
    assert out.exists()


def test_ema_update_in_the_train_step():
    config = tiny_config(1)
    mesh = make_mesh()
    state = jax.device_put(
        create_train_state(config, jr.key(0)), replicated_sharding(mesh)
    )
    ema_before = _params(state.ema_params)
    images = np.random.default_rng(0).integers(0, 256, (1, 16, 8, 8, 1), np.uint8)
    images = jax.device_put(images, NamedSharding(mesh, PartitionSpec(None, "data")))
    state, _ = make_train_step(config, mesh)(state, images)
    expected = jax.tree.map(
        lambda e, p: 0.9 * e + 0.1 * p, ema_before, _params(state.params)
    )
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7),
        _params(state.ema_params),
        expected,
    )


SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    from test_diffusion_train import tiny_config
    from timeaware_jax.train.ddpm import create_train_state, make_train_step
    from timeaware_jax.train.sharding import make_mesh, replicated_sharding

    assert jax.device_count() == 8, jax.devices()
    config = tiny_config(2)
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 8, 8, 1), np.uint8)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = make_mesh(devices)
        state = jax.device_put(
            create_train_state(config, jr.key(0)), replicated_sharding(mesh)
        )
        sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
        step = make_train_step(config, mesh)
        for k in range(2):
            batch = jax.device_put(images[k : k + 1], sharding)
            state, metrics = step(state, batch)
        results.append(jax.tree.map(np.asarray, state.params))
    diffs = jax.tree.leaves(
        jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), *results)
    )
    print("MAXDIFF", max(diffs))
    """
)


@pytest.mark.slow
def test_sharded_step_matches_one_device():
    # A fresh process with 8 forced CPU devices compiles the step twice (about
    # a minute on 2 cores), hence slow.
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "tests"), str(ROOT), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    max_diff = float(result.stdout.split("MAXDIFF")[-1])
    assert max_diff < 1e-5, f"1 vs 8 devices differ by {max_diff}"
