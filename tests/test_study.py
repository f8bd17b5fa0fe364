"""The reproduction study: its grid, a real resumable run, and its report."""

import json
import pathlib
import shutil

import numpy as np
import pytest
from scipy import stats

from timeaware_jax.cli import main
from timeaware_jax.diffusion.grid import save_image_grid
from timeaware_jax.study import grid as study_grid
from timeaware_jax.study.report import compare, mean_std, write_report
from timeaware_jax.train import read_metrics

CONFIGS = str(pathlib.Path(__file__).parents[1] / "experiments/configs")

# The sizes of `tiny_config` in test_node_train.py: the same model, so the
# compiled training step is shared when both files run in one session.
TINY_NODE = {
    "model.features": 8,
    "model.groups": 4,
    "optim.batch_size": 32,
    "data.train_subset": 64,
    "data.test_subset": 40,
    "eval_batch_size": 32,
    "log_every": 1,
    "probe.num_inputs": 8,
    "probe.num_times": 3,
    "num_epochs": 1,
}


# ---------------------------------------------------------------- the grid


def test_grid_has_every_cell_with_every_seed_outermost():
    runs = study_grid.grid()
    # node: 2 data sets x (7 GroupNorm + 4 BatchNorm cells); DDPM: 5 cells.
    cells = 2 * 11 + 5
    assert len(runs) == 3 * cells
    assert [run.seed for run in runs] == [0] * cells + [1] * cells + [2] * cells
    assert len({run.name for run in runs}) == len(runs)
    assert not any(r.remedy.startswith("fewer") and r.norm == "batch" for r in runs)
    ddpm = {r.remedy for r in runs if r.study == "ddpm"}
    assert ddpm == {
        "baseline",
        "positional",
        "bias_init",
        "fewer_groups",
        "scale_shift",
    }


def test_every_run_config_selects_its_cell():
    conditionings = {"positional", "bias_init", "scale_shift"}
    for run in study_grid.grid(seeds=[7]):
        config = study_grid.load_run_config(run, CONFIGS)
        assert config.seed == 7
        expected = run.remedy if run.remedy in conditionings else "additive"
        assert config.model.conditioning == expected, run
        fewer = run.remedy == "fewer_groups"
        if run.study == "node":
            assert config.data.name == run.dataset
            assert config.model.norm == run.norm
            if run.norm == "group":  # channels per group: 2, or 8, 16, 32 for R3
                per_group = config.model.features // config.model.groups
                expected = {"fewer_groups4": 16, "fewer_groups1": 32}
                assert per_group == expected.get(run.remedy, 8 if fewer else 2)
        else:
            assert config.num_train_steps == 1000
            assert config.model.ch // config.model.groups == (16 if fewer else 4)


def test_paper_scale_runs_the_paper_configs_unchanged():
    runs = study_grid.grid(scale="paper")
    assert len(runs) == 3 * (2 * 11 + 5)
    assert {r.dataset for r in runs} == {"cifar10", "cifar100"}
    for run in runs[: 2 * 11 + 5]:
        config = study_grid.load_run_config(run, CONFIGS)
        fewer = run.remedy == "fewer_groups"
        if run.study == "node":
            assert config.num_epochs == 160 and config.model.features == 64
            if run.norm == "group":
                groups = study_grid.R3_GROUPS.get(run.remedy, 32)
                assert config.model.groups == groups
        else:
            assert config.num_train_steps == 800_000 and config.model.ch == 128
            assert config.model.groups == (8 if fewer else 32)
        assert run.overrides() == {"seed": 0}


def test_extra_values_reach_every_run_and_its_command():
    extra = {"num_epochs": 24, "optim.decay_epochs": (16, 21)}
    runs = study_grid.grid(["node"], [3], ["digits"], ["group"], extra=extra)
    assert len(runs) == 7
    for run in runs:
        config = study_grid.load_run_config(run, CONFIGS)
        assert config.seed == 3 and config.num_epochs == 24
        assert tuple(config.optim.decay_epochs) == (16, 21)
        assert "--set num_epochs=24 --set 'optim.decay_epochs=(16, 21)'" in (
            run.command(CONFIGS, "out")
        )


def test_extra_values_must_name_existing_keys():
    (run,) = study_grid.grid(
        ["node"], [0], ["digits"], ["batch"], ["baseline"], extra={"num_epoch": 2}
    )
    with pytest.raises(ValueError, match="'num_epoch'"):
        study_grid.load_run_config(run, CONFIGS)
    with pytest.raises(ValueError, match="extra must not set the seed"):
        study_grid.grid(extra={"seed": 1})


def test_reproduce_command_stays_light_and_checks_its_values():
    import subprocess
    import sys

    # `timeaware reproduce --help` must not pay for importing jax.
    code = (
        "import sys, timeaware_jax.commands.reproduce as r; "
        "print(r.REMEDIES, 'jax' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"{study_grid.REMEDIES} False"
    assert main(["reproduce", "--set", "num_epoch=2", "--list"]) == 2


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(studies=["gan"]), "studies"),
        (dict(datasets=["cifar10"]), "datasets"),
        (dict(norms=["layer"]), "norms"),
        (dict(remedies=["R5"]), "remedies"),
        (dict(seeds=[]), "seeds"),
        (dict(scale="tpu"), "scale"),
        (dict(datasets=["digits"], scale="paper"), "datasets"),
    ],
)
def test_bad_grid_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        study_grid.grid(**kwargs)


# ---------------------------------------------------------------- statistics


def test_compare_is_welchs_test():
    a, b = [0.80, 0.82, 0.85], [0.70, 0.75, 0.71]
    c = compare(a, b)
    assert c.difference == pytest.approx(np.mean(a) - np.mean(b))
    se = np.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3)
    assert c.standard_error == pytest.approx(se)
    assert c.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert c.exceeds_spread
    assert not compare([0.8, 0.7, 0.9], [0.78, 0.85, 0.75]).exceeds_spread
    with pytest.raises(ValueError, match="at least 2"):
        compare([1.0], [1.0, 2.0])


def test_mean_std_uses_the_sample_deviation():
    assert mean_std([1.0, 2.0, 3.0], ".2f") == "2.00 ± 1.00"
    assert mean_std([0.5]) == "0.500"
    assert mean_std([]) == "–"


# ---------------------------------------------------------------- a real run


def _argv(out) -> list[str]:
    return [
        "reproduce",
        "--out",
        str(out),
        "--study",
        "node",
        "--datasets",
        "digits",
        "--norms",
        "group",
        "--remedies",
        "baseline",
        "--seeds",
        "0",
        "1",
        "--configs",
        CONFIGS,
        "--no-progress",
    ]


@pytest.fixture(scope="module")
def study_out(tmp_path_factory):
    """Two seeds of one neural-ODE cell, trained for real on the digits."""
    out = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(study_grid.STUDY_OVERRIDES, ("node", "digits"), TINY_NODE)
        assert main(_argv(out)) == 0
        assert main(_argv(out)) == 0  # all done: nothing runs again
        # A run whose result was lost resumes from its final checkpoint.
        seed1 = out / "node/digits_group_baseline/seed1"
        before = json.loads((seed1 / "result.json").read_text())
        (seed1 / "result.json").unlink()
        assert main(_argv(out)) == 0
        after = json.loads((seed1 / "result.json").read_text())
    return out, before, after


def test_runs_write_their_results_once(study_out):
    out, _, _ = study_out
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3  # two runs, then the one whose result was removed
    for seed in (0, 1):
        workdir = out / f"node/digits_group_baseline/seed{seed}"
        result = json.loads((workdir / "result.json").read_text())
        final = [r for r in read_metrics(workdir / "metrics.jsonl") if "eval_loss" in r]
        assert len(final) == 1  # one epoch, trained once
        assert result["eval_accuracy"] == final[0]["eval_accuracy"]
        assert 0.0 <= result["eval_accuracy"] <= 1.0
        assert result["nfe_forward_train"] >= 6  # at least one adaptive step
        assert result["nfe_backward_train"] > 0
        assert 0.0 <= result["tv_ratio_norm2"] and result["wall_seconds"] > 0
        assert f"--set seed={seed}" in result["command"]


def test_a_resumed_run_does_not_train_again(study_out):
    out, before, after = study_out
    for key in ("eval_accuracy", "eval_nfe", "tv_ratio_norm3"):
        assert after[key] == before[key]


def _fake_remedy(out, remedy: str, shift: float) -> None:
    """A copy of the baseline cell whose accuracies are moved by `shift`."""
    for seed in (0, 1):
        source = out / f"node/digits_group_baseline/seed{seed}"
        target = out / f"node/digits_group_{remedy}/seed{seed}"
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints"))
        result = json.loads((target / "result.json").read_text())
        result["run"]["remedy"] = remedy
        result["cell"] = f"digits_group_{remedy}"
        result["eval_accuracy"] += shift * (1 + seed)
        (target / "result.json").write_text(json.dumps(result))


def test_report_tables_hold_the_measured_numbers(study_out, tmp_path):
    out, _, _ = study_out
    copy = tmp_path / "out"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints"))
    _fake_remedy(copy, "positional", 0.2)
    paths = write_report(copy, tmp_path / "report")
    names = sorted(p.name for p in paths)
    assert names == ["node_curves.png", "node_time_variance.png", "tables.md"]
    assert all(p.stat().st_size > 0 for p in paths)

    tables = (tmp_path / "report/tables.md").read_text()
    results = {}
    for remedy in ("baseline", "positional"):
        results[remedy] = [
            json.loads(
                (copy / f"node/digits_group_{remedy}/seed{s}/result.json").read_text()
            )
            for s in (0, 1)
        ]
    base = [r["eval_accuracy"] for r in results["baseline"]]
    moved = [r["eval_accuracy"] for r in results["positional"]]
    assert f"| baseline | 2 | {mean_std(base)} | – |" in tables
    assert (
        f"| R1 positional | 2 | {mean_std(moved)} | {compare(moved, base).cell()} |"
        in tables
    )


def test_ddpm_report_from_logged_results(tmp_path):
    """The DDPM tables and plots from results laid out as `execute` writes them."""
    blocks = ["down_0_block_0/cond_norm2", "mid_block_0/cond_norm2"]
    fds = {"baseline": [5.0, 5.5, 6.0], "scale_shift": [3.0, 3.1, 3.2]}
    for remedy, values in fds.items():
        for seed, fd in enumerate(values):
            workdir = tmp_path / f"out/ddpm/digits_group_{remedy}/seed{seed}"
            workdir.mkdir(parents=True)
            losses = {100: 0.2 + 0.01 * seed, 200: 0.1 + 0.01 * seed}
            with open(workdir / "metrics.jsonl", "w") as f:
                for step, loss in losses.items():
                    f.write(json.dumps({"step": step, "eval_loss": loss}) + "\n")
            save_image_grid(
                np.zeros((4, 8, 8, 1), np.float32), workdir / "samples/step_200.png"
            )
            result = {
                "run": dict(
                    study="ddpm",
                    dataset="digits",
                    norm="group",
                    remedy=remedy,
                    seed=seed,
                ),
                "cell": f"digits_group_{remedy}",
                "fd_ddim100": fd,
                "fd_ddpm100": 2 * fd,
                "eval_loss": {str(k): v for k, v in losses.items()},
                "blocks": [
                    dict(layer=name, m=4, exact=0.7, ratio_before=0.3, ratio_after=0.2)
                    for name in blocks
                ],
                "output_ratio": 0.1,
                "sensitivity": 0.5,
                "wall_seconds": 10.0,
                "hardware": "test",
            }
            (workdir / "result.json").write_text(json.dumps(result))
    paths = write_report(tmp_path / "out", tmp_path / "report")
    assert sorted(p.name for p in paths) == [
        "ddpm_loss_depth.png",
        "ddpm_samples.png",
        "tables.md",
    ]
    tables = (tmp_path / "report/tables.md").read_text()
    versus = compare(fds["scale_shift"], fds["baseline"])
    assert versus.exceeds_spread
    assert f"| R4 scale-shift | 3 | 3.10 ± 0.10 | {versus.cell(2)} |" in tables
    assert "| down_0_block_0 | 0.200 ± 0.000 [0.70] |" in tables


def test_report_of_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="out must hold finished runs"):
        write_report(tmp_path, tmp_path / "report")


# ---------------------------------------------------------------- the page


def test_page_tables_are_recomputed_from_the_logs(study_out, tmp_path):
    from timeaware_jax.study.page import render_page
    from timeaware_jax.study.report import node_accuracy_table

    out, _, _ = study_out
    page = (
        "# Results\n\nSome prose.\n\n"
        f"<!-- table node_accuracy from {out} -->\n| stale | numbers |\n"
        "<!-- end table -->\n\nMore prose.\n"
    )
    rendered = render_page(page)
    table = node_accuracy_table(study_grid.load_results(out))
    assert rendered == page.replace("| stale | numbers |", table)
    assert render_page(rendered) == rendered
    with pytest.raises(ValueError, match="known tables"):
        render_page(page.replace("node_accuracy", "node_speed"))
    with pytest.raises(ValueError, match="no finished runs"):
        render_page(page.replace(str(out), str(tmp_path)))


def test_results_page_holds_the_committed_measurements():
    """Every table of docs/results.md is what the committed logs give."""
    from timeaware_jax.study.page import render_page

    root = pathlib.Path(__file__).parents[1]
    text = (root / "docs/results.md").read_text(encoding="utf-8")
    assert text.count("<!-- table ") >= 8
    assert "@@" not in text  # no placeholder left for prose to come
    assert render_page(text, root) == text
