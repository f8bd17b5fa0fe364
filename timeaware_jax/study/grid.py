"""The grid of the reproduction study, and a resumable way to run it.

A *cell* is one network configuration (study, data set, norm, remedy); a
*run* is one cell trained with one seed. Every run writes into its own
directory under the study's output directory:

- `config.json` and `metrics.jsonl`, written by the trainer as it goes;
- `checkpoints/`, so that an interrupted run resumes where it stopped;
- `result.json`, written last, with the final metrics, the wall time and the
  hardware. A run with a `result.json` is done and is skipped next time.

The sizes are CPU sizes: the `quick` neural-ODE configs (Fashion-MNIST on a
2,048-image subset) and the digits DDPM for 500 steps. They are recorded in
each run's `config.json`; `STUDY_OVERRIDES` lists what differs from the
config files.
"""

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence

import ml_collections

from timeaware_jax.train.logging import read_metrics, to_jsonable

STUDIES = ("node", "ddpm")
NODE_DATASETS = ("digits", "fashion_mnist")
DDPM_DATASETS = ("digits",)

# Remedies and the config-file parts that select them (see DESIGN.md):
# R1 positional time channel, R2 operand bias init, R3 fewer groups, R4 the
# field's scale-shift after the norm.
REMEDIES = ("baseline", "positional", "bias_init", "fewer_groups", "scale_shift")
NODE_NORMS = {
    # norm family -> (config part of the norm, config part of R3 or None)
    "group": ("group32", "group8"),
    "batch": ("batch", None),
}
DDPM_GROUPS = {"baseline": "groups8", "fewer_groups": "groups2"}

# Config values that the study sets on top of the config files (CPU budget).
STUDY_OVERRIDES = {
    ("node", "fashion_mnist"): {"data.train_subset": 2048},
    ("ddpm", "digits"): {
        "num_train_steps": 500,
        "log_every": 25,
        "eval_every": 100,
        "eval_batches": 4,
        "sample_every": 500,
        "checkpoint_every": 250,
    },
}

# How the DDPM runs are scored: (name, sampler keyword arguments).
DDPM_SAMPLERS = {
    "ddim100": dict(sampler="ddim", num_steps=100, eta=0.0),
    "ddpm100": dict(sampler="ddim", num_steps=100, eta=1.0),
}
DDPM_NUM_SAMPLES = 500


@dataclasses.dataclass(frozen=True)
class Run:
    """One seed of one cell of the grid."""

    study: str
    dataset: str
    norm: str  # "group" or "batch"
    remedy: str
    seed: int

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
            norm, fewer = NODE_NORMS[self.norm]
            if self.remedy == "fewer_groups":
                parts = (self.dataset, fewer, "baseline", "quick")
            else:
                parts = (self.dataset, norm, self.remedy, "quick")
            return f"{configs_dir}/node.py:{','.join(parts)}"
        groups = DDPM_GROUPS.get(self.remedy, DDPM_GROUPS["baseline"])
        remedy = "baseline" if self.remedy == "fewer_groups" else self.remedy
        return f"{configs_dir}/ddpm_{self.dataset}.py:{remedy},{groups}"

    def overrides(self) -> dict:
        return {
            "seed": self.seed,
            **STUDY_OVERRIDES.get((self.study, self.dataset), {}),
        }

    def command(self, configs_dir: str, out: str) -> str:
        """The equivalent `timeaware` command line for this run alone."""
        trainer = "train-node" if self.study == "node" else "train-ddpm"
        sets = " ".join(f"--set {k}={v}" for k, v in self.overrides().items())
        return (
            f"timeaware {trainer} --config {self.config_spec(configs_dir)} "
            f"--workdir {out}/{self.name} {sets}"
        )


def grid(
    studies: Sequence[str] = STUDIES,
    seeds: Sequence[int] = (0, 1, 2),
    datasets: Sequence[str] | None = None,
    norms: Sequence[str] | None = None,
    remedies: Sequence[str] | None = None,
) -> list[Run]:
    """The runs of the study, seeds outermost; `None` keeps every choice.

    Seeds come outermost so that a study stopped early has every cell with
    the same number of seeds.
    """
    _check_choices("studies", studies, STUDIES)
    _check_choices("datasets", datasets, (*NODE_DATASETS, *DDPM_DATASETS))
    _check_choices("norms", norms, tuple(NODE_NORMS))
    _check_choices("remedies", remedies, REMEDIES)
    if not seeds:
        raise ValueError("seeds must name at least one seed, got none.")
    cells = []
    for study in studies:
        for dataset in NODE_DATASETS if study == "node" else DDPM_DATASETS:
            for norm in tuple(NODE_NORMS) if study == "node" else ("group",):
                for remedy in REMEDIES:
                    if remedy == "fewer_groups" and norm != "group":
                        continue
                    cell = (study, dataset, norm, remedy)
                    wanted = (None, datasets, norms, remedies)
                    if all(
                        w is None or c in w for c, w in zip(cell, wanted, strict=True)
                    ):
                        cells.append(cell)
    return [Run(*cell, seed=int(seed)) for seed in seeds for cell in cells]


def load_run_config(run: Run, configs_dir: str) -> ml_collections.ConfigDict:
    """The run's config: its config file plus the study's overrides."""
    from timeaware_jax.commands.config_file import load_config

    config = load_config(run.config_spec(configs_dir))
    for key, value in run.overrides().items():
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = value
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
        result = ddpm_result(workdir, int(run.seed))
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


def ddpm_result(workdir: str, seed: int) -> dict:
    """Small-data Frechet distances for each sampler, losses and time-awareness."""
    from timeaware_jax.diagnose import diagnose_checkpoint
    from timeaware_jax.evaluate import evaluate_checkpoint

    result = {}
    for name, kwargs in DDPM_SAMPLERS.items():
        scores = evaluate_checkpoint(
            workdir,
            num_samples=DDPM_NUM_SAMPLES,
            batch_size=DDPM_NUM_SAMPLES,
            seed=seed,
            **kwargs,
        )
        result[f"fd_{name}"] = scores["fd"]
        result[f"nfe_{name}"] = scores["nfe"]
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
