"""End-to-end ODE-Net training on the embedded digits: one real run, resume, errors."""

import importlib.util
import pathlib

import numpy as np
import pytest

from timeaware_jax.node import load_checkpoint
from timeaware_jax.train import NonFiniteError, read_metrics
from timeaware_jax.train.node import check_config, evaluate, train_and_evaluate

CONFIG_PATH = pathlib.Path(__file__).parents[1] / "experiments/configs/node.py"


def _config_module():
    spec = importlib.util.spec_from_file_location("node_config", CONFIG_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(arg: str = "digits,group32,baseline,quick"):
    """The quick digits config, shrunk further: 2 steps per epoch."""
    config = _config_module().get_config(arg)
    config.model.features = 8
    config.model.groups = 4
    config.optim.batch_size = 32
    config.data.train_subset = 64
    config.data.test_subset = 40
    config.eval_batch_size = 32
    config.log_every = 1
    config.probe.num_inputs = 8
    config.probe.num_times = 3
    return config


def _eval_records(workdir):
    return [r for r in read_metrics(workdir / "metrics.jsonl") if "eval_accuracy" in r]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """Two epochs straight, and one epoch then a resumed second epoch."""
    straight = tmp_path_factory.mktemp("straight")
    config = tiny_config()
    config.num_epochs = 2
    train_and_evaluate(config, straight)

    resumed = tmp_path_factory.mktemp("resumed")
    config.num_epochs = 1
    train_and_evaluate(config, resumed)
    first = read_metrics(resumed / "metrics.jsonl")
    config.num_epochs = 2
    train_and_evaluate(config, resumed)
    return straight, resumed, first


def test_one_epoch_on_real_data_logs_every_metric(resumed_run):
    _, _, first = resumed_run
    train = [r for r in first if "loss" in r]
    assert [r["step"] for r in train] == [1, 2]
    for record in train:
        assert np.isfinite(record["loss"]) and np.isfinite(record["grad_norm"])
        assert record["nfe_forward"] > 0
        # Backpropagation through the solver transposes every evaluation.
        assert record["nfe_backward"] == record["nfe_forward"]
    (evaluation,) = [r for r in first if "eval_accuracy" in r]
    assert 0.0 <= evaluation["eval_accuracy"] <= 1.0
    assert evaluation["eval_nfe"] > 0
    for key in ("tv_ratio_in_norm2", "tv_ratio_norm2", "tv_ratio_norm3"):
        assert evaluation[key] >= 0.0


def test_resumed_run_repeats_the_uninterrupted_run(resumed_run):
    straight, resumed, _ = resumed_run
    a, b = _eval_records(straight), _eval_records(resumed)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [1, 2]
    for key in ("eval_accuracy", "eval_loss", "eval_nfe", "tv_ratio_norm2"):
        assert a[-1][key] == pytest.approx(b[-1][key], rel=1e-5, abs=1e-6)


def test_checkpoint_loads_for_evaluation(resumed_run):
    straight, _, _ = resumed_run
    model, variables, config = load_checkpoint(straight)
    assert config.num_epochs == 2
    from timeaware_jax.data import load_dataset

    test = load_dataset("digits", "test")
    metrics = evaluate(model, variables, (test.images[:40], test.labels[:40]), 32)
    assert metrics["accuracy"] == pytest.approx(
        _eval_records(straight)[-1]["eval_accuracy"], abs=1e-6
    )


def test_bad_configs_raise_clear_errors(tmp_path):
    module = _config_module()
    with pytest.raises(ValueError, match="unknown config part"):
        module.get_config("digits,group32,magic")
    for section, key, value, match in [
        ("optim", "name", "rmsprop", "optim.name"),
        ("model", "solver", "rk45", "solver"),
        ("model", "groups", 3, "groups"),
        ("model", "stem", "vgg", "stem"),
    ]:
        config = tiny_config()
        config[section][key] = value
        with pytest.raises(ValueError, match=match):
            check_config(config)
    config = tiny_config()
    config.model.num_classes = 7
    with pytest.raises(ValueError, match="num_classes"):
        train_and_evaluate(config, tmp_path / "bad")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing")


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config()
    config.num_epochs = 1
    train_and_evaluate(config, tmp_path)
    config.num_epochs = 2
    config.optim.learning_rate = float("nan")
    with pytest.raises(NonFiniteError):
        train_and_evaluate(config, tmp_path)
    from timeaware_jax.train import Checkpointer

    checkpointer = Checkpointer(tmp_path / "checkpoints")
    assert checkpointer.latest_step() == 2
    checkpointer.close()


@pytest.mark.slow
def test_eight_cpu_devices_give_the_same_metrics_as_one(tmp_path):
    import os
    import subprocess
    import sys

    script = (
        "import sys; sys.path.insert(0, 'tests');"
        "from test_node_train import tiny_config;"
        "from timeaware_jax.train.node import train_and_evaluate;"
        "config = tiny_config(); config.num_epochs = 1;"
        "train_and_evaluate(config, sys.argv[1])"
    )
    root = pathlib.Path(__file__).parents[1]
    results = []
    for devices in (1, 8):
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        workdir = tmp_path / f"devices{devices}"
        subprocess.run(
            [sys.executable, "-c", script, str(workdir)], cwd=root, env=env, check=True
        )
        results.append(read_metrics(workdir / "metrics.jsonl"))
    for one, eight in zip(*results, strict=True):
        for key, value in one.items():
            assert eight[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_summary_table_pools_seeds(tmp_path):
    import json

    spec = importlib.util.spec_from_file_location(
        "summarize_node", CONFIG_PATH.parents[1] / "summarize_node.py"
    )
    summarize_node = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize_node)
    workdirs = []
    for seed, accuracy in [(0, 0.8), (1, 0.9)]:
        workdir = tmp_path / f"seed{seed}"
        workdir.mkdir()
        config = tiny_config()
        config.seed = seed
        (workdir / "config.json").write_text(json.dumps(config.to_dict()))
        records = [
            {"step": 2, "loss": 1.0, "nfe_backward": 30},
            {"step": 2, "eval_accuracy": accuracy, "eval_nfe": 26.0},
        ]
        lines = "\n".join(json.dumps(r) for r in records)
        (workdir / "metrics.jsonl").write_text(lines + "\n")
        workdirs.append(str(workdir))
    table = summarize_node.summarize([summarize_node.read_run(w) for w in workdirs])
    row = table.splitlines()[-1]
    assert "| digits | group4 | baseline | 2 | 0.850 ± 0.071 | 26.0 ± 0.0 |" in row
