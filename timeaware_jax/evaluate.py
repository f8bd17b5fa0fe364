"""Score a trained DDPM: sample it, then FID and IS, or a small-data distance.

The metric follows the data set the model was trained on unless chosen:
"fd-digits" for the embedded digits, "fd-fashion" for Fashion-MNIST (Frechet
distances in the feature space of a small classifier, not FID), "fid" (with
the Inception Score) for everything else, which needs the FID Inception
weights (`timeaware fid --help`).
"""

from collections.abc import Callable

import jax.random as jr
import numpy as np

from timeaware_jax.data import to_uint8
from timeaware_jax.diffusion import load_checkpoint, sample
from timeaware_jax.metrics.evaluate import METRICS, evaluate_images

DEFAULT_METRICS = {"digits": "fd-digits", "fashion_mnist": "fd-fashion"}


def default_metric(dataset: str) -> str:
    """The metric that fits images of `dataset`."""
    return DEFAULT_METRICS.get(dataset, "fid")


def sample_images(
    model,
    params,
    schedule,
    key,
    num_samples: int,
    *,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
    **sampler_kwargs,
) -> tuple[np.ndarray, int]:
    """`num_samples` uint8 images `[N, H, W, C]` and the NFE per image.

    Drawn `batch_size` at a time; every call uses the same batch size, so the
    sampler compiles once.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    batch_size = min(batch_size, num_samples)
    chunks, nfe = [], 0
    for i, subkey in enumerate(jr.split(key, -(-num_samples // batch_size))):
        images, nfe = sample(
            model, params, schedule, subkey, batch_size, return_nfe=True,
            **sampler_kwargs,
        )  # fmt: skip
        chunks.append(np.asarray(to_uint8(images)))
        if progress is not None:
            progress(min((i + 1) * batch_size, num_samples))
    return np.concatenate(chunks)[:num_samples], int(nfe)


def evaluate_checkpoint(
    workdir: str,
    *,
    num_samples: int = 1000,
    sampler: str = "ddim",
    num_steps: int | None = 100,
    eta: float = 0.0,
    metric: str | None = None,
    weights: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    step: int | None = None,
    sample_progress: Callable[[int], None] | None = None,
    metric_progress: Callable[[int], None] | None = None,
) -> dict:
    """Sample a `train-ddpm` checkpoint and score the samples.

    **Arguments:**

    - `workdir`: the run's directory; `step` picks a checkpoint (latest).
    - `num_samples`, `batch_size`, `seed`: how many images, how many per
      compiled call, and the sampling seed.
    - `sampler`, `num_steps`, `eta`: as in `timeaware_jax.diffusion.sample`
      (`num_steps` is ignored by the ancestral sampler).
    - `metric`: one of `METRICS`; by default the one for the training data.
    - `weights`: the FID Inception weights, for `"fid"`.

    **Returns:** a dict with the metric's values (`fd`, or `fid`, `is_mean`,
    `is_std`), the NFE per image, and what was evaluated.

    **Raises:** `ValueError` for an unknown metric or sampler;
    `FileNotFoundError` for a missing checkpoint or Inception weights.
    """
    model, params, schedule, config = load_checkpoint(workdir, step=step)
    dataset = config.data.name
    metric = metric or default_metric(dataset)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    kwargs = dict(sampler=sampler, prediction=config.diffusion.prediction, eta=eta)
    if sampler != "ddpm":
        kwargs["num_steps"] = num_steps
    images, nfe = sample_images(
        model,
        params,
        schedule,
        jr.key(seed),
        num_samples,
        batch_size=batch_size,
        progress=sample_progress,
        **kwargs,
    )
    scores = evaluate_images(
        images,
        metric=metric,
        dataset=dataset,
        weights=weights,
        data_dir=config.data.get("data_dir"),
        progress=metric_progress,
    )
    return dict(
        workdir=str(workdir),
        dataset=dataset,
        conditioning=config.model.conditioning,
        metric=metric,
        sampler=sampler,
        num_steps=num_steps if sampler != "ddpm" else schedule.num_timesteps,
        nfe=nfe,
        num_samples=num_samples,
        seed=seed,
        **scores,
    )
