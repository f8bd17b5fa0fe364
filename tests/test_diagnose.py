"""`timeaware diagnose` end to end on the embedded digits."""

import json

import flax.serialization
import jax.random as jr
import pytest

from timeaware_jax.cli import main
from timeaware_jax.diagnose import build_variant, diagnose, reference_images


def test_diagnose_writes_table_jsonl_and_plot(tmp_path, capsys):
    out = tmp_path / "diag"
    code = main(
        ["diagnose", "--family", "node", "--remedy", "baseline", "--num-images", "8",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "[node] baseline (G=32)" in printed and "conv2" in printed
    rows = [
        json.loads(line) for line in (out / "layers.jsonl").read_text().splitlines()
    ]
    assert [r["layer"] for r in rows] == ["conv1", "conv2"]
    assert all(0 < r["exact"] < 1 and r["predicted"] == 0.5 for r in rows)
    assert (out / "time_variance.png").stat().st_size > 10_000
    assert "measured" in (out / "report.txt").read_text()


def test_diagnose_reads_a_params_file(tmp_path):
    images = reference_images("digits", 8)
    variant = build_variant("node", "baseline", images=images, key=jr.key(7))
    path = tmp_path / "vf.msgpack"
    path.write_bytes(flax.serialization.to_bytes(variant.variables))
    fresh = diagnose(["node"], ["baseline"], num_images=8)[0]
    loaded = diagnose(["node"], ["baseline"], num_images=8, params_file=path)[0]
    kernel = variant.variables["params"]["conv1"]["kernel"]
    assert (loaded.variant.variables["params"]["conv1"]["kernel"] == kernel).all()
    assert loaded.layers[0].exact.fraction != fresh.layers[0].exact.fraction


def test_diagnose_rejects_bad_choices(tmp_path):
    images = reference_images("digits", 4)
    with pytest.raises(ValueError, match="family must be one of"):
        build_variant("unet", "baseline", images=images)
    with pytest.raises(ValueError, match="remedy must be one of"):
        build_variant("node", "dropout", images=images)
    with pytest.raises(ValueError, match="fewer_groups"):
        build_variant("node", "fewer_groups", images=images, norm="batch")
    with pytest.raises(ValueError, match="params_file needs exactly one"):
        diagnose(["node", "ddpm"], ["baseline"], params_file=tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="params file not found"):
        diagnose(["node"], ["baseline"], num_images=4, params_file=tmp_path / "x")
    with pytest.raises(SystemExit):
        main(["diagnose", "--norm", "weight"])
