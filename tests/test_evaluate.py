"""`eval-ddpm` and `diagnose --checkpoint` on a DDPM trained for two steps."""

import json
import pathlib

import numpy as np
import pytest
from test_diffusion_train import TINY as TRAINING_TINY

from timeaware_jax.cli import main
from timeaware_jax.commands.config_file import apply_overrides, load_config
from timeaware_jax.diagnose import diagnose_checkpoint
from timeaware_jax.evaluate import evaluate_checkpoint, sample_images
from timeaware_jax.train.ddpm import train_and_evaluate

CONFIG = (
    pathlib.Path(__file__).resolve().parents[1] / "experiments/configs/ddpm_digits.py"
)
# The training tests' tiny model, so that a session running both compiles the
# training and sampling steps once.
TINY = [*TRAINING_TINY, "num_train_steps=2"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    config = load_config(f"{CONFIG}:quick")
    apply_overrides(config, TINY)
    path = tmp_path_factory.mktemp("ddpm")
    train_and_evaluate(config, path)
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TIMEAWARE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_evaluate_checkpoint_reports_the_small_data_distance(workdir):
    result = evaluate_checkpoint(
        workdir, num_samples=8, sampler="ddim", num_steps=2, batch_size=4
    )
    assert result["metric"] == "fd-digits" and result["dataset"] == "digits"
    assert result["nfe"] == 2 and result["num_samples"] == 8
    assert np.isfinite(result["fd"]) and result["fd"] > 0


def test_eval_ddpm_command_appends_json_lines(workdir, tmp_path, capsys):
    out = tmp_path / "eval.jsonl"
    args = ["eval-ddpm", "--workdir", str(workdir), "--num", "8", "--steps", "2",
            "--batch", "4", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    record = json.loads(out.read_text().splitlines()[-1])
    assert record == json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate_checkpoint(workdir, num_samples=4, num_steps=2, metric="kid")


def test_sample_images_rejects_bad_counts(workdir):
    with pytest.raises(ValueError, match="num_samples"):
        sample_images(None, None, None, None, 0)


def test_diagnose_reads_a_trained_unet(workdir):
    (diagnosis,) = diagnose_checkpoint(workdir, num_images=4)
    assert diagnosis.variant.family == "ddpm"
    assert len(diagnosis.layers) > 0
    assert all(layer.conditioning == "additive" for layer in diagnosis.layers)
    assert all(0 < layer.exact.fraction <= 1 for layer in diagnosis.layers)
