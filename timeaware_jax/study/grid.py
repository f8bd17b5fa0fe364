"""The grid of the reproduction study, and a resumable way to run it.

A *cell* is one network configuration (study, data set, norm, remedy); a
*run* is one cell trained with one seed. Every run writes into its own
directory under the study's output directory:

- `config.json` and `metrics.jsonl`, written by the trainer as it goes;
- `checkpoints/`, so that an interrupted run resumes where it stopped;
- `result.json`, written last, with the final metrics, the wall time and the
  hardware. A run with a `result.json` is done and is skipped next time.

Two scales share the grid. `cpu` (the default) runs in minutes per run: the
`quick` neural-ODE configs on the digits and Fashion-MNIST (a 2,048-image
subset) and a digits DDPM for 1,000 steps; `STUDY_OVERRIDES` lists what it
changes in the config files, and every run records its full config. `paper`
runs the same cells at the paper's scale from the same config files: the
torchdiffeq recipe on CIFAR-10 and CIFAR-100, and the CIFAR-10 DDPM of Ho et
al. scored by FID on 50,000 samples; it needs an accelerator, the TFDS data
and the FID Inception weights.
"""

import dataclasses
import json
import os
import platform
import shlex
import time
from collections.abc import Callable, Iterable, Sequence

import ml_collections

from timeaware_jax.study.cells import REMEDIES
from timeaware_jax.train.logging import read_metrics, to_jsonable

STUDIES = ("node", "ddpm")
SCALES = ("cpu", "paper")
DATASETS = {
    # (scale, study) -> data sets
    ("cpu", "node"): ("digits", "fashion_mnist"),
    ("cpu", "ddpm"): ("digits",),
    ("paper", "node"): ("cifar10", "cifar100"),
    ("paper", "ddpm"): ("cifar10",),
}

# R3: the neural ODE's GroupNorm groups in torchdiffeq's terms (64 channels,
# 32 groups in the baseline; the quick configs halve channels and groups).
# The neural ODE sweeps them; the DDPM has `fewer_groups` only.
R3_GROUPS = {"fewer_groups": 8, "fewer_groups4": 4, "fewer_groups1": 1}
NODE_NORMS = {"group": "group32", "batch": "batch"}
# DDPM GroupNorm groups (config part), baseline and R3: 4 and 16 channels per
# group on the digits U-Net's 32 channels, 4 and 16 on CIFAR-10's 128.
DDPM_GROUPS = {
    "cpu": {"baseline": "groups8", "fewer_groups": "groups2"},
    "paper": {"baseline": "groups32", "fewer_groups": "groups8"},
}

# Config values that the study sets on top of the config files (CPU budget).
STUDY_OVERRIDES = {
    ("node", "fashion_mnist"): {"data.train_subset": 2048},
    ("ddpm", "digits"): {
        "num_train_steps": 1000,
        "log_every": 25,
        "eval_every": 100,
        "eval_batches": 4,
        "sample_every": 1000,
        "checkpoint_every": 250,
    },
}

# How the DDPM runs are scored: the number of samples, and each sampler's
# name and keyword arguments. On the CPU, DDPM sampling runs on 100 respaced
# steps (DDIM with eta = 1, the ancestral sampler of the shortened chain).
DDPM_EVALUATION = {
    "cpu": (
        500,
        {
            "ddim100": dict(sampler="ddim", num_steps=100, eta=0.0),
            "ddpm100": dict(sampler="ddim", num_steps=100, eta=1.0),
        },
    ),
    "paper": (
        50_000,
        {
            "ddim100": dict(sampler="ddim", num_steps=100, eta=0.0),
            "ddpm1000": dict(sampler="ddpm"),
        },
    ),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One seed of one cell of the grid."""

    study: str
    dataset: str
    norm: str  # "group" or "batch"
    remedy: str
    seed: int
    scale: str = "cpu"
    # Config values set on top of the study's own, as (dotted key, value).
    extra: tuple[tuple[str, object], ...] = ()

    @property
    def cell(self) -> str:
        return f"{self.dataset}_{self.norm}_{self.remedy}"

    @property
    def name(self) -> str:
        """The run's directory, relative to the study's output directory."""
        return f"{self.study}/{self.cell}/seed{self.seed}"

    def config_spec(self, configs_dir: str) -> str:
        """The `path.py:arg` of the config file, as `timeaware train-*` takes it."""
        if self.study == "node":
            if self.remedy in R3_GROUPS:
                groups = f"group{R3_GROUPS[self.remedy]}"
                parts = (self.dataset, groups, "baseline")
            else:
                parts = (self.dataset, NODE_NORMS[self.norm], self.remedy)
            quick = ("quick",) if self.scale == "cpu" else ()
            return f"{configs_dir}/node.py:{','.join(parts + quick)}"
        choices = DDPM_GROUPS[self.scale]
        groups = choices.get(self.remedy, choices["baseline"])
        remedy = "baseline" if self.remedy == "fewer_groups" else self.remedy
        return f"{configs_dir}/ddpm_{self.dataset}.py:{remedy},{groups}"

    def overrides(self) -> dict:
        """The config values the study sets: the seed, the CPU budget, `extra`."""
        budget = STUDY_OVERRIDES.get((self.study, self.dataset), {})
        if self.scale != "cpu":
            budget = {}
        return {"seed": self.seed, **budget, **dict(self.extra)}

    def command(self, configs_dir: str, out: str) -> str:
        """The equivalent `timeaware` command line for this run alone."""
        trainer = "train-node" if self.study == "node" else "train-ddpm"
        return (
            f"timeaware {trainer} --config {self.config_spec(configs_dir)} "
            f"--workdir {out}/{self.name} {set_flags(self.overrides())}"
        )


def set_flags(values: dict) -> str:
    """`--set KEY=VALUE` for each config value, quoted for a shell.

    JSON lists (a logged tuple) are written back as tuples, as `--set` reads
    them.
    """
    return " ".join(
        f"--set {shlex.quote(f'{k}={tuple(v) if isinstance(v, list) else v}')}"
        for k, v in values.items()
    )


def grid(
    studies: Sequence[str] = STUDIES,
    seeds: Sequence[int] = (0, 1, 2),
    datasets: Sequence[str] | None = None,
    norms: Sequence[str] | None = None,
    remedies: Sequence[str] | None = None,
    scale: str = "cpu",
    extra: dict | None = None,
) -> list[Run]:
    """The runs of the study, seeds outermost; `None` keeps every choice.

    Seeds come outermost so that a study stopped early has every cell with
    the same number of seeds. `extra` maps dotted config keys to values that
    every run sets on top of the study's own (a longer budget, say); they are
    part of each run's command and `result.json`.
    """
    _check_choices("scale", (scale,), SCALES)
    _check_choices("studies", studies, STUDIES)
    known = {d for (s, _), names in DATASETS.items() if s == scale for d in names}
    _check_choices("datasets", datasets, tuple(sorted(known)))
    _check_choices("norms", norms, tuple(NODE_NORMS))
    _check_choices("remedies", remedies, REMEDIES)
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none.")
    if extra and "seed" in extra:
        raise ValueError(
            f"extra must not set the seed (the grid's seeds do), got {extra!r}."
        )
    cells = []
    for study in studies:
        for dataset in DATASETS[scale, study]:
            for norm in tuple(NODE_NORMS) if study == "node" else ("group",):
                for remedy in REMEDIES:
                    if not _applies(study, norm, remedy):
                        continue
                    cell = (study, dataset, norm, remedy)
                    wanted = (None, datasets, norms, remedies)
                    if all(
                        w is None or c in w for c, w in zip(cell, wanted, strict=True)
                    ):
                        cells.append(cell)
    pairs = tuple((extra or {}).items())
    return [Run(*cell, int(seed), scale, pairs) for seed in seeds for cell in cells]


def _applies(study: str, norm: str, remedy: str) -> bool:
    """R3 needs GroupNorm; only the neural ODE sweeps the number of groups."""
    if remedy not in R3_GROUPS:
        return True
    return norm == "group" and (study == "node" or remedy == "fewer_groups")


def load_run_config(run: Run, configs_dir: str) -> ml_collections.ConfigDict:
    """The run's config: its config file plus the study's overrides."""
    from timeaware_jax.commands.config_file import has_key, load_config, set_value

    config = load_config(run.config_spec(configs_dir))
    for key, _ in run.extra:
        if not has_key(config, key):
            raise ValueError(
                f"extra sets {key!r}, which the config {run.config_spec(configs_dir)}"
                " does not have; check the key's spelling."
            )
    for key, value in run.overrides().items():
        set_value(config, key, value)
    return config


def is_done(run: Run, out: str) -> bool:
    return os.path.isfile(os.path.join(out, run.name, "result.json"))


def execute(
    run: Run,
    out: str,
    *,
    configs_dir: str = "experiments/configs",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train (or resume) one run, evaluate it and write its `result.json`.

    `progress(stage)` is called with "train", "evaluate" and "done".
    """
    workdir = os.path.join(out, run.name)
    config = load_run_config(run, configs_dir)
    notify = progress or (lambda stage: None)
    start = time.perf_counter()
    notify("train")
    if run.study == "node":
        from timeaware_jax.train.node import train_and_evaluate

        train_and_evaluate(config, workdir)
        train_seconds = time.perf_counter() - start
        notify("evaluate")
        result = node_result(workdir)
    else:
        from timeaware_jax.train.ddpm import train_and_evaluate

        train_and_evaluate(config, workdir)
        train_seconds = time.perf_counter() - start
        notify("evaluate")
        result = ddpm_result(workdir, int(run.seed), run.scale)
    result.update(
        run=dataclasses.asdict(run),
        cell=run.cell,
        command=run.command(configs_dir, out),
        train_seconds=train_seconds,
        wall_seconds=time.perf_counter() - start,
        hardware=hardware(),
    )
    with open(os.path.join(workdir, "result.json"), "w", encoding="utf-8") as f:
        json.dump(to_jsonable(result), f, indent=1)
    notify("done")
    return result


def record_failure(run: Run, out: str, error: Exception) -> dict:
    """Write the `result.json` of a run that stopped on a non-finite value.

    The run counts as done (a diverged run is an outcome); its last good
    checkpoint stays in place.
    """
    workdir = os.path.join(out, run.name)
    os.makedirs(workdir, exist_ok=True)
    result = dict(
        run=dataclasses.asdict(run),
        cell=run.cell,
        failed=f"{type(error).__name__}: {error}",
        hardware=hardware(),
    )
    with open(os.path.join(workdir, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return result


def node_result(workdir: str) -> dict:
    """Final test metrics and the NFE of the last training epoch."""
    records = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    evals = [r for r in records if "eval_accuracy" in r]
    trains = [r for r in records if "loss" in r]
    if not evals or not trains:
        raise ValueError(f"workdir {workdir!r} has no finished training log.")
    last_epoch = trains[-1]["epoch"]
    final = [r for r in trains if r["epoch"] == last_epoch]
    result = {k: v for k, v in evals[-1].items() if k not in ("step", "epoch")}
    result["nfe_forward_train"] = sum(r["nfe_forward"] for r in final) / len(final)
    result["nfe_backward_train"] = sum(r["nfe_backward"] for r in final) / len(final)
    result["epochs"] = evals[-1]["epoch"]
    return result


def ddpm_result(workdir: str, seed: int, scale: str = "cpu") -> dict:
    """Sample scores for each sampler, losses, and time-awareness per block.

    The scores are the small-data Frechet distance (`fd_<sampler>`) for the
    digits and Fashion-MNIST, FID and Inception Score (`fid_<sampler>`,
    `is_mean_<sampler>`, `is_std_<sampler>`) for CIFAR-10.
    """
    from timeaware_jax.diagnose import diagnose_checkpoint
    from timeaware_jax.evaluate import evaluate_checkpoint

    num_samples, samplers = DDPM_EVALUATION[scale]
    result = {}
    for name, kwargs in samplers.items():
        scores = evaluate_checkpoint(
            workdir,
            num_samples=num_samples,
            batch_size=min(num_samples, 500),
            seed=seed,
            **kwargs,
        )
        for key in ("fd", "fid", "is_mean", "is_std", "nfe"):
            if key in scores:
                result[f"{key}_{name}"] = scores[key]
    records = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    result["eval_loss"] = {
        int(r["step"]): r["eval_loss"] for r in records if "eval_loss" in r
    }
    result["train_loss"] = {int(r["step"]): r["loss"] for r in records if "loss" in r}
    (diagnosis,) = diagnose_checkpoint(workdir)
    result["blocks"] = [
        {k: row[k] for k in ("layer", "m", "exact", "ratio_before", "ratio_after")}
        for row in diagnosis.records()
    ]
    result["output_ratio"] = diagnosis.probe.output_ratio
    result["sensitivity"] = diagnosis.probe.sensitivity
    return result


def hardware() -> str:
    """A one-line description of where this process runs."""
    import jax

    devices = jax.devices()
    kind = devices[0].device_kind if devices else "none"
    return (
        f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores, "
        f"{len(devices)} x {jax.default_backend()} ({kind}), jax {jax.__version__}"
    )


def load_results(out: str) -> list[dict]:
    """Every `result.json` under `out` (finished runs only)."""
    results = []
    for root, _dirs, files in sorted(os.walk(out)):
        if "result.json" in files:
            with open(os.path.join(root, "result.json"), encoding="utf-8") as f:
                results.append(json.load(f))
    return results


def pending(runs: Iterable[Run], out: str) -> list[Run]:
    return [run for run in runs if not is_done(run, out)]


def _check_choices(name: str, values: Sequence[str] | None, choices: tuple) -> None:
    for value in values or ():
        if value not in choices:
            raise ValueError(f"{name} must be drawn from {choices}, got {value!r}.")
