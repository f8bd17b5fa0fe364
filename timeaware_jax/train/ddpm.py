"""Train a DDPM U-Net: `train_and_evaluate(config, workdir)`.

Data parallel over every device with `jax.jit`, a one-axis `Mesh` and
`NamedSharding`: the state is replicated, each batch is split along its batch
axis, and XLA inserts the gradient all-reduce. Optionally several optimizer
steps run inside one compiled call (`lax.scan`).

The working directory receives

    config.json        the config (read back by `diffusion.load_checkpoint`)
    metrics.jsonl      one JSON line per logging step (loss, grad and param norms)
    checkpoints/       Orbax checkpoints; training resumes from the latest
    samples/           PNG grids of EMA samples at intervals

Random numbers depend on the step alone (`fold_in(key, step)`) and the data
order on the epoch alone, so a resumed run repeats an uninterrupted one.
"""

import functools
import itertools
import json
import os
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import jax.random as jr
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from timeaware_jax.data import augment, batches, load_dataset, num_batches
from timeaware_jax.diffusion.checkpoint import model_from_config, schedule_from_config
from timeaware_jax.diffusion.grid import save_image_grid
from timeaware_jax.diffusion.losses import diffusion_loss
from timeaware_jax.diffusion.sampling import sample
from timeaware_jax.train.checkpoint import Checkpointer
from timeaware_jax.train.guard import check_finite
from timeaware_jax.train.logging import MetricWriter, to_jsonable
from timeaware_jax.train.sharding import DATA_AXIS, make_mesh, replicated_sharding
from timeaware_jax.train.state import TrainState

# ---------------------------------------------------------------- model and state


def _step_key(config: ml_collections.ConfigDict, *extra) -> tuple:
    """What a compiled step depends on: the config sections that shape it."""
    sections = ("data", "model", "diffusion", "optim")
    parts = {name: to_jsonable(config.get(name)) for name in sections}
    return (json.dumps(parts, sort_keys=True), *extra)


_COMPILED: dict[tuple, object] = {}


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam with linear warmup to a constant rate, after global-norm clipping.

    lr(step) = learning_rate * min(1, step / warmup_steps)
    """
    optim = config.optim
    learning_rate = optax.linear_schedule(
        0.0, optim.learning_rate, max(int(optim.warmup_steps), 1)
    )
    return optax.chain(
        optax.clip_by_global_norm(optim.grad_clip),
        optax.adam(
            learning_rate, b1=optim.get("beta1", 0.9), b2=optim.get("beta2", 0.999)
        ),
    )


def init_params(config: ml_collections.ConfigDict, key: jax.Array) -> dict:
    """The U-Net's initial `params` collection."""
    model = model_from_config(config)
    size, channels = config.data.image_size, config.data.channels
    x = jnp.zeros((1, size, size, channels), jnp.float32)
    return model.init(key, x, jnp.zeros((1,), jnp.int32))["params"]


def create_train_state(config: ml_collections.ConfigDict, key: jax.Array) -> TrainState:
    """A fresh `TrainState` (parameters, Adam state, EMA) for `config`.

    Built by one compiled function (cached per config), not op by op.
    """
    cache_key = _step_key(config, "create")
    if cache_key not in _COMPILED:
        tx = make_optimizer(config)
        ema_decay = config.optim.ema_decay or None

        def create(key: jax.Array) -> TrainState:
            params = init_params(config, key)
            return TrainState.create(params, tx, ema_decay=ema_decay)

        _COMPILED[cache_key] = jax.jit(create)
    return _COMPILED[cache_key](key)


def abstract_train_state(
    config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding | None = None
) -> TrainState:
    """The shapes of `create_train_state(config)`, placed on `sharding`, no compute."""
    sharding = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shapes = jax.eval_shape(functools.partial(create_train_state, config), jr.key(0))
    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        shapes,
    )


# ---------------------------------------------------------------- the step


def make_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    """The compiled `train_step(state, images [K, B, H, W, C] uint8)`.

    Runs K optimizer steps in one call (`lax.scan`); returns the new state and
    the metrics of the last step (loss, grad_norm, param_norm). The batch
    axis is split over the mesh. The random numbers of step `s` come from
    `fold_in(key(config.seed), s)`. Compiled functions are cached per config
    (the seed aside) and mesh, so a resumed run, or another seed of the same
    run, does not compile again in the same process.
    """
    cache_key = _step_key(config, "train", mesh)
    if cache_key not in _COMPILED:
        _COMPILED[cache_key] = _make_train_step(config, mesh)
    compiled = _COMPILED[cache_key]
    seed_key = jax.device_put(jr.key(int(config.seed)), replicated_sharding(mesh))

    def train_step(state: TrainState, images: jax.Array) -> tuple[TrainState, dict]:
        return compiled(state, images, seed_key)

    return train_step


def _make_train_step(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh):
    model = model_from_config(config)
    schedule = schedule_from_config(config)
    prediction = config.diffusion.prediction
    random_flip = config.data.get("random_flip", False)

    def one_step(
        state: TrainState, images: jax.Array, seed_key: jax.Array
    ) -> tuple[TrainState, dict]:
        key = jr.fold_in(seed_key, state.step)
        key_flip, key_loss, key_dropout = jr.split(key, 3)
        x_0 = augment.to_float(images)
        if random_flip:
            x_0 = augment.random_flip(key_flip, x_0)

        def loss_fn(params: dict) -> jax.Array:
            def model_fn(x_t: jax.Array, t: jax.Array) -> jax.Array:
                return model.apply(
                    {"params": params},
                    x_t,
                    t,
                    train=True,
                    rngs={"dropout": key_dropout},
                )

            loss, _ = diffusion_loss(
                model_fn, schedule, x_0, key_loss, prediction=prediction
            )
            return loss

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        state = state.apply_gradients(grads)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(state.params),
        }
        return state, metrics

    def train_step(
        state: TrainState, images: jax.Array, seed_key: jax.Array
    ) -> tuple[TrainState, dict]:
        if images.shape[0] == 1:
            # Without a loop: XLA's CPU backend runs convolution gradients
            # inside a while loop tens of times slower.
            return one_step(state, images[0], seed_key)
        state, metrics = jax.lax.scan(
            lambda s, x: one_step(s, x, seed_key), state, images
        )
        return state, jax.tree.map(lambda m: m[-1], metrics)

    replicated = replicated_sharding(mesh)
    stacked = NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))  # [K, B, ...]
    return jax.jit(
        train_step,
        in_shardings=(replicated, stacked, replicated),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def make_eval_step(config: ml_collections.ConfigDict):
    """The compiled `eval_step(params, images uint8, key) -> loss` (no dropout)."""
    cache_key = _step_key(config, "eval")
    if cache_key not in _COMPILED:
        _COMPILED[cache_key] = _make_eval_step(config)
    return _COMPILED[cache_key]


def _make_eval_step(config: ml_collections.ConfigDict):
    model = model_from_config(config)
    schedule = schedule_from_config(config)

    @jax.jit
    def eval_step(params: dict, images: jax.Array, key: jax.Array) -> jax.Array:
        def model_fn(x_t: jax.Array, t: jax.Array) -> jax.Array:
            return model.apply({"params": params}, x_t, t, train=False)

        loss, _ = diffusion_loss(
            model_fn,
            schedule,
            augment.to_float(images),
            key,
            prediction=config.diffusion.prediction,
        )
        return loss

    return eval_step


# ---------------------------------------------------------------- data


def _load(config: ml_collections.ConfigDict, split: str):
    dataset = load_dataset(
        config.data.name, split, data_dir=config.data.get("data_dir")
    )
    images = dataset.images
    size = config.data.image_size
    if images.shape[1:3] != (size, size):
        raise ValueError(
            f"config.data.image_size must match the data set's images, got "
            f"{size} for {config.data.name} images of shape {images.shape[1:]}."
        )
    if images.shape[-1] != config.data.channels:
        raise ValueError(
            f"config.data.channels must be {images.shape[-1]} for "
            f"{config.data.name}, got {config.data.channels}."
        )
    return dataset


def _batch_stream(
    dataset, batch_size: int, key: jax.Array, start_step: int
) -> Iterator:
    """Batches forever, epoch by epoch, positioned at `start_step`."""
    per_epoch = num_batches(len(dataset.images), batch_size)
    if per_epoch < 1:
        raise ValueError(
            f"config.optim.batch_size must not exceed the data set size "
            f"{len(dataset.images)}, got {batch_size}."
        )
    epoch, skip = divmod(start_step, per_epoch)
    for e in itertools.count(epoch):
        stream = batches(dataset, batch_size, key, epoch=e)
        for images, _ in itertools.islice(stream, skip if e == epoch else 0, None):
            yield images


# ---------------------------------------------------------------- the loop


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    *,
    progress: bool = False,
) -> TrainState:
    """Train (or resume) a DDPM as `config` says, writing everything to `workdir`.

    Args:
        config: see `experiments/configs/ddpm_*.py` (sections data, model,
            diffusion, optim, and the intervals log_every, eval_every,
            sample_every, checkpoint_every, plus num_train_steps).
        workdir: output directory; an existing checkpoint there is resumed.
        progress: show a tqdm bar on stderr.

    Returns:
        The final `TrainState`.

    Raises:
        NonFiniteError: when a metric stops being finite (the last good
            checkpoint stays the latest).
        ValueError: for a config that does not fit the data.

    Example:
        >>> state = train_and_evaluate(ddpm_digits.get_config("quick"), "runs/d")
    """
    workdir = os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as file:
        json.dump(to_jsonable(config), file, indent=2)

    # Data, mesh and state.
    train_data = _load(config, "train")
    test_data = _load(config, "test")
    mesh = make_mesh()
    replicated = replicated_sharding(mesh)
    steps_per_call = int(config.optim.get("steps_per_call", 1))
    batch_size = int(config.optim.batch_size)

    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.get("max_to_keep", 3)
    )
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(abstract_train_state(config, replicated))
    else:
        state = jax.device_put(
            create_train_state(config, jr.key(config.seed)), replicated
        )
    start = int(state.step)

    train_step = make_train_step(config, mesh)
    eval_step = make_eval_step(config)
    stream = _batch_stream(train_data, batch_size, jr.key(config.seed + 1), start)
    stacked = NamedSharding(mesh, PartitionSpec(None, DATA_AXIS))
    # Every process draws the same global batches and keeps its own slice.
    local_size = batch_size // jax.process_count()
    local = slice(
        jax.process_index() * local_size, (jax.process_index() + 1) * local_size
    )
    bar = _progress_bar(progress, start, config.num_train_steps)

    # Training.
    with MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        step = start
        while step < config.num_train_steps:
            k = min(steps_per_call, config.num_train_steps - step)
            images = np.stack([next(stream) for _ in range(k)])  # [K, B, H, W, C]
            images = images[:, local]  # this process's part of the global batch
            images = jax.make_array_from_process_local_data(stacked, images)
            state, metrics = train_step(state, images)
            previous, step = step, step + k
            check_finite(metrics, step)
            if bar is not None:
                bar.update(k)
                bar.set_postfix(loss=f"{float(metrics['loss']):.4f}")

            if _crossed(previous, step, config.log_every):
                writer.write(step, metrics)
            if (
                _crossed(previous, step, config.eval_every)
                or step == config.num_train_steps
            ):
                loss = _evaluate(eval_step, state, test_data, config)
                writer.write(step, {"eval_loss": loss})
            if (
                _crossed(previous, step, config.sample_every)
                or step == config.num_train_steps
            ):
                _save_samples(config, state, workdir, step)
            if (
                _crossed(previous, step, config.checkpoint_every)
                or step == config.num_train_steps
            ):
                if step not in checkpointer.all_steps():
                    checkpointer.save(step, state, metadata={"config": config})
    checkpointer.close()
    if bar is not None:
        bar.close()
    return state


def _crossed(previous: int, step: int, every: int) -> bool:
    return bool(every) and previous // every != step // every


def _evaluate(eval_step, state: TrainState, dataset, config) -> float:
    """Mean test-set loss of the evaluation parameters on a few fixed batches."""
    batch_size = min(int(config.optim.batch_size), len(dataset.images))
    stream = batches(dataset, batch_size, None, shuffle=False)
    losses = [
        float(eval_step(state.eval_params, jnp.asarray(images), jr.key(i)))
        for i, (images, _) in enumerate(itertools.islice(stream, config.eval_batches))
    ]
    return float(np.mean(losses))


def _save_samples(config, state: TrainState, workdir: str, step: int) -> None:
    s = config.sample
    images = sample(
        model_from_config(config),
        state.eval_params,
        schedule_from_config(config),
        jr.key(config.seed + 2),
        s.num_images,
        sampler=s.sampler,
        num_steps=s.get("num_steps"),
        eta=s.get("eta", 0.0),
        prediction=config.diffusion.prediction,
    )
    path = os.path.join(workdir, "samples", f"step_{step:08d}.png")
    save_image_grid(np.asarray(images), path, scale=s.get("scale", 1))


def _progress_bar(progress: bool, start: int, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train-ddpm", unit="step")
