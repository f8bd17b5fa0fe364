"""The diffusion notebook runs top to bottom in quick mode on the CPU."""

from pathlib import Path

COLAB = Path(__file__).resolve().parent.parent / "colab"


def test_diffusion_notebook(tmp_path):
    # Two tiny trainings of 20 steps and one sampler each.
    from test_notebooks import execute

    execute(COLAB / "03_diffusion.ipynb", tmp_path)
    for variant in ("baseline", "scale_shift"):
        workdir = tmp_path / "runs" / f"ddpm_digits_{variant}"
        assert (workdir / "metrics.jsonl").is_file()
        assert any((workdir / "checkpoints").iterdir())
