"""Train the ODE-Net classifier: `train_and_evaluate(config, workdir)`.

torchdiffeq's recipe by default: SGD with momentum 0.9, learning rate
`0.1 * batch_size / 128`, multiplied by 0.1 at epochs 60, 100 and 140, random
crops with padding (and horizontal flips for CIFAR), cross-entropy. Data
parallel over every device with `jax.jit`, a one-axis `Mesh` and
`NamedSharding`: the state is replicated, each batch is split along its batch
axis, and XLA inserts the gradient all-reduce.

The working directory receives

    config.json     the config (read back by `load_checkpoint`)
    metrics.jsonl   JSON lines: per logged step loss, accuracy, forward and
                    backward NFE, gradient and parameter norms, learning rate;
                    per epoch the test accuracy, loss and NFE and the
                    time-variance ratio before and after each norm of the
                    vector field (`timeaware_jax.analysis.probe_time_variance`)
    checkpoints/    Orbax checkpoints after every epoch; a rerun resumes from
                    the latest

Random numbers depend on the step alone (`fold_in(key, step)`) and the data
order on the epoch alone, so a resumed run repeats an uninterrupted one.
"""

import functools
import json
import os

import jax
import jax.numpy as jnp
import jax.random as jr
import ml_collections
import numpy as np
import optax

from timeaware_jax.analysis.probe import probe_time_variance
from timeaware_jax.data import augment, batches, load_dataset, num_batches
from timeaware_jax.node import (
    STEMS,
    ODENet,
    ODESolveError,
    check_solve_args,
    check_vector_field_args,
    read_backward_count,
    reset_backward_count,
    solve_failure_message,
    vector_field_variables,
)
from timeaware_jax.train.checkpoint import Checkpointer
from timeaware_jax.train.guard import check_finite
from timeaware_jax.train.logging import MetricWriter, to_jsonable
from timeaware_jax.train.sharding import data_sharding, make_mesh, replicated_sharding
from timeaware_jax.train.state import TrainState

OPTIMIZERS = ("sgd", "adam")

# ---------------------------------------------------------------- model and state


def make_model(config: ml_collections.ConfigDict, *, training: bool = True) -> ODENet:
    """The `ODENet` that `config.model` describes.

    With `training=True` a failed solve is reported, not raised (the loop
    raises `ODESolveError` after the step), and backward VJPs are counted
    when `config.model.count_backward` is set.
    """
    m = config.model
    return ODENet(
        num_classes=int(m.num_classes),
        stem=m.stem,
        features=int(m.features),
        norm=m.norm,
        groups=int(m.groups),
        conditioning=m.conditioning,
        time_bias=float(m.time_bias),
        embed_scale=float(m.get("embed_scale", 10.0)),
        solver=m.solver,
        rtol=float(m.rtol),
        atol=float(m.atol),
        dt0=None if m.get("dt0") is None else float(m.dt0),
        adjoint=m.adjoint,
        max_steps=int(m.max_steps),
        throw=not training,
        count_backward=training and bool(m.get("count_backward", False)),
    )


def _schedule_args(config: ml_collections.ConfigDict, steps_per_epoch: int):
    o = config.optim
    lr0 = float(o.learning_rate)
    if o.name == "sgd":
        lr0 *= int(o.batch_size) / 128
    boundaries = tuple(int(epoch) * steps_per_epoch for epoch in o.decay_epochs)
    return lr0, float(o.decay_factor), boundaries


def _schedule(lr0: float, decay_factor: float, boundaries: tuple):
    return optax.piecewise_constant_schedule(
        lr0, {step: decay_factor for step in boundaries}
    )


def learning_rate_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """Piecewise-constant learning rate, torchdiffeq's step decays.

        lr(step) = lr0 * decay_factor ** (number of decay epochs passed)

    with `lr0 = learning_rate * batch_size / 128` for SGD (torchdiffeq's
    scaling) and `learning_rate` for Adam.
    """
    return _schedule(*_schedule_args(config, steps_per_epoch))


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raise `ValueError` for a config `train_and_evaluate` cannot run."""
    o = config.optim
    if o.name not in OPTIMIZERS:
        raise ValueError(f"config.optim.name={o.name!r} is not one of {OPTIMIZERS}.")
    if int(o.batch_size) < 1:
        raise ValueError(
            f"config.optim.batch_size must be positive, got {o.batch_size!r}."
        )
    if int(config.num_epochs) < 1:
        raise ValueError(
            f"config.num_epochs must be positive, got {config.num_epochs!r}."
        )
    model = make_model(config)
    if model.stem not in STEMS:
        raise ValueError(f"config.model.stem={model.stem!r} is not one of {STEMS}.")
    check_vector_field_args(model.conditioning, model.norm, model.groups)
    check_solve_args(
        model.solver, model.dt0, model.adjoint, model.max_steps, model.rtol, model.atol
    )
    if model.features % (model.groups if model.norm == "group" else 1):
        raise ValueError(
            f"config.model.groups={model.groups} must divide "
            f"config.model.features={model.features}."
        )


@functools.lru_cache(maxsize=16)
def _optimizer(name, momentum, lr0, decay_factor, boundaries):
    schedule = _schedule(lr0, decay_factor, boundaries)
    if name == "sgd":
        return optax.sgd(schedule, momentum=momentum)
    return optax.adam(schedule)


def make_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    """SGD with momentum (or Adam) under `learning_rate_schedule`.

    The same config gives the same transformation object, so compiled steps
    are reused across calls in one process.
    """
    o = config.optim
    return _optimizer(
        o.name, float(o.momentum), *_schedule_args(config, steps_per_epoch)
    )


def create_train_state(
    config: ml_collections.ConfigDict, image_shape: tuple, steps_per_epoch: int
) -> TrainState:
    """A fresh `TrainState` for `config` and images of shape `[H, W, C]`."""
    model = make_model(config)
    x = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init(jr.key(int(config.seed)), x)
    return TrainState.create(
        variables["params"],
        make_optimizer(config, steps_per_epoch),
        batch_stats=variables.get("batch_stats"),
    )


# ---------------------------------------------------------------- the steps


def _variables(params, batch_stats) -> dict:
    variables = {"params": params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    return variables


@functools.lru_cache(maxsize=16)
def make_train_step(model: ODENet, seed: int, crop: int, flip: bool, mesh):
    """The compiled `train_step(state, images uint8 [B,H,W,C], labels [B])`.

    Returns the new state and the step's metrics: loss, accuracy, forward
    NFE, whether the solve failed, gradient and parameter norms. The seed is
    an argument of the compiled function, so runs that differ only in their
    seed share one compilation within a process.
    """
    compiled = _compiled_train_step(model, crop, flip, mesh)
    key = jax.device_put(jr.key(seed), replicated_sharding(mesh))

    def train_step(state: TrainState, images, labels):
        return compiled(state, images, labels, key)

    return train_step


@functools.lru_cache(maxsize=8)
def _compiled_train_step(model: ODENet, crop: int, flip: bool, mesh):
    replicated = replicated_sharding(mesh)
    sharded = data_sharding(mesh)

    def train_step(state: TrainState, images, labels, seed_key):
        key = jr.fold_in(seed_key, state.step)
        key_crop, key_flip = jr.split(key)
        x = augment.to_float(images)
        if crop:
            x = augment.random_crop(key_crop, x, crop)
        if flip:
            x = augment.random_flip(key_flip, x)

        def loss_fn(params):
            logits, updates = model.apply(
                _variables(params, state.batch_stats),
                x,
                train=True,
                mutable=["batch_stats", "ode_stats"],
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
            return loss.mean(), (logits, updates)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (logits, updates)), grads = grad_fn(state.params)
        stats = updates["ode_stats"]["ode_block"]
        new_state = state.apply_gradients(
            grads, batch_stats=updates.get("batch_stats") or None
        )
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
            "nfe_forward": stats["nfe"],
            "solve_failed": stats["failed"],
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(new_state.params),
        }
        return new_state, metrics

    return jax.jit(
        train_step,
        in_shardings=(replicated, sharded, sharded, replicated),
        out_shardings=(replicated, replicated),
    )


@functools.lru_cache(maxsize=16)
def make_eval_step(model: ODENet):
    """The compiled `eval_step(variables, images uint8, labels, mask)`.

    Returns sums over the unmasked examples (correct predictions, loss) and
    the forward NFE and failure flag of the batch's solve.
    """

    def eval_step(variables, images, labels, mask):
        logits, updates = model.apply(
            variables, augment.to_float(images), train=False, mutable=["ode_stats"]
        )
        stats = updates["ode_stats"]["ode_block"]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        correct = (jnp.argmax(logits, -1) == labels) * mask
        return jnp.sum(correct), jnp.sum(loss * mask), stats["nfe"], stats["failed"]

    return jax.jit(eval_step)


def evaluate(
    model: ODENet, variables: dict, dataset, batch_size: int = 500
) -> dict[str, float]:
    """Test accuracy, mean loss and mean forward NFE of `model` on `dataset`.

    Every example counts once: the last batch is padded to `batch_size` and
    masked, so only one shape is compiled.

    Args:
        model: an `ODENet`.
        variables: `{"params": ...}` (and `"batch_stats"` with BatchNorm).
        dataset: a `timeaware_jax.data.Dataset` or `(images, labels)` arrays.
        batch_size: examples per evaluation batch.

    Returns:
        `{"accuracy", "loss", "nfe"}` (NFE averaged over batches).

    Raises:
        ODESolveError: when a solve fails (for example exceeds `max_steps`).

    Example:
        >>> evaluate(model, variables, load_dataset("digits", "test"))
        {'accuracy': 0.9, 'loss': 0.31, 'nfe': 26.0}
    """
    images, labels = (
        (dataset.images, dataset.labels) if hasattr(dataset, "images") else dataset
    )
    eval_step = make_eval_step(model)
    n = len(images)
    batch_size = min(batch_size, n)
    correct = loss = 0.0
    nfes, failed = [], False
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size]
        y = labels[start : start + batch_size]
        mask = np.ones(batch_size, np.float32)
        if len(x) < batch_size:  # pad the last batch to the compiled shape
            pad = batch_size - len(x)
            mask[len(x) :] = 0.0
            x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
            y = np.concatenate([y, np.repeat(y[-1:], pad, axis=0)])
        c, s, nfe, fail = eval_step(variables, x, y, mask)
        correct, loss = correct + float(c), loss + float(s)
        nfes.append(int(nfe))
        failed = failed or bool(fail)
    if failed:
        raise ODESolveError(
            solve_failure_message(model.solver, model.rtol, model.atol, model.max_steps)
        )
    return {"accuracy": correct / n, "loss": loss / n, "nfe": float(np.mean(nfes))}


def time_variance(
    model: ODENet, variables: dict, images, num_times: int = 9
) -> dict[str, float]:
    """Time-variance ratio around each norm of the vector field, at test time.

    The ODE's initial states `y0 = stem(x)` of `images` are held fixed and
    the vector field is evaluated at `num_times` times in [0, 1] in inference
    mode; `analysis.probe_time_variance` gives the ratio
    `mean_x var_t / mean_t var_x` of every intermediate tensor.

    Returns:
        `tv_ratio_in_norm{2,3}`: the ratio of the convolution output that
        enters `norm2` / `norm3`; `tv_ratio_norm{2,3}`: the ratio of that
        block's output, after the norm and, for the R4 remedies, after the
        time conditioning that follows it; `tv_ratio_output`: of `f` itself.
        `norm1` sees no time and is left out.
    """
    x = augment.to_float(images)
    y0 = model.apply(variables, x, method="stem_features")
    func = model.vector_field()
    vf_variables = vector_field_variables(variables)
    ts = np.linspace(0.0, 1.0, num_times)

    def apply_fn(variables, y, t):
        return func.apply(variables, t, y)

    result = probe_time_variance(apply_fn, vf_variables, y0, ts, batched_t=False)
    metrics = {"tv_ratio_output": result.output_ratio}
    for index in (2, 3):
        metrics[f"tv_ratio_in_norm{index}"] = result.ratio(f"conv{index - 1}")
        metrics[f"tv_ratio_norm{index}"] = result.ratio(f"norm{index}")
    return metrics


# ---------------------------------------------------------------- data


def load_data(config: ml_collections.ConfigDict, split: str):
    """Images and labels of `split`, cut to `config.data.{train,test}_subset`."""
    d = config.data
    dataset = load_dataset(d.name, split, data_dir=d.get("data_dir"))
    if dataset.num_classes != int(config.model.num_classes):
        raise ValueError(
            f"config.model.num_classes must be {dataset.num_classes} for "
            f"{d.name}, got {config.model.num_classes}."
        )
    subset = int(d.get(f"{split}_subset", 0) or 0)
    images, labels = dataset.images, dataset.labels
    if subset:
        images, labels = images[:subset], labels[:subset]
    return images, labels


# ---------------------------------------------------------------- the loop


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str | os.PathLike, *, progress=False
) -> TrainState:
    """Train (or resume) an ODE-Net as `config` says, writing to `workdir`.

    Args:
        config: see `experiments/configs/node.py` (sections data, model,
            optim; seed, num_epochs, log_every, eval_batch_size, probe).
        workdir: output directory; an existing checkpoint there is resumed.
        progress: show a tqdm bar on stderr.

    Returns:
        The final `TrainState`.

    Raises:
        NonFiniteError: when a training metric stops being finite (the last
            good checkpoint, of the previous epoch, stays the latest).
        ODESolveError: when a solve runs out of `config.model.max_steps`.
        ValueError: for an invalid config.

    Example:
        >>> from experiments.configs import node
        >>> train_and_evaluate(node.get_config("digits,group32,baseline,quick"), "r")
    """
    check_config(config)
    workdir = os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as file:
        json.dump(to_jsonable(config), file, indent=2)

    # Data, mesh and state.
    train_images, train_labels = load_data(config, "train")
    test_images, test_labels = load_data(config, "test")
    batch_size = int(config.optim.batch_size)
    steps_per_epoch = num_batches(len(train_images), batch_size)
    if steps_per_epoch < 1:
        raise ValueError(
            f"config.optim.batch_size must not exceed the {len(train_images)} "
            f"training images, got {batch_size}."
        )
    mesh = make_mesh()
    replicated = replicated_sharding(mesh)
    state = create_train_state(config, train_images.shape[1:], steps_per_epoch)
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    start_epoch = 0
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(state)
        start_epoch = int(checkpointer.metadata()["epoch"])
    state = jax.device_put(state, replicated)

    model = make_model(config)
    d = config.data
    train_step = make_train_step(
        model, int(config.seed), int(d.crop_padding), bool(d.random_flip), mesh
    )
    eval_model = make_model(config, training=False)
    schedule = learning_rate_schedule(config, steps_per_epoch)
    data_key = jr.key(int(config.seed) + 1)
    total = int(config.num_epochs) * steps_per_epoch
    bar = _progress_bar(progress, start_epoch * steps_per_epoch, total)

    with MetricWriter(os.path.join(workdir, "metrics.jsonl")) as writer:
        for epoch in range(start_epoch, int(config.num_epochs)):
            # Training epoch.
            stream = batches(
                (train_images, train_labels), batch_size, data_key, epoch=epoch
            )
            for images, labels in stream:
                reset_backward_count()
                state, metrics = train_step(state, images, labels)
                step = int(state.step)
                metrics = {k: np.asarray(v).item() for k, v in metrics.items()}
                metrics["nfe_backward"] = read_backward_count()
                metrics["learning_rate"] = float(schedule(step - 1))
                metrics["epoch"] = epoch
                check_finite(metrics, step)
                if metrics.pop("solve_failed"):
                    raise ODESolveError(
                        solve_failure_message(
                            model.solver, model.rtol, model.atol, model.max_steps
                        )
                    )
                if step % int(config.log_every) == 0 or step % steps_per_epoch == 0:
                    writer.write(step, metrics)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{metrics['loss']:.3f}", nfe=metrics["nfe_forward"]
                    )

            # Evaluation and checkpoint.
            variables = _variables(state.params, state.batch_stats)
            results = evaluate(
                eval_model,
                variables,
                (test_images, test_labels),
                int(config.eval_batch_size),
            )
            eval_metrics = {f"eval_{k}": v for k, v in results.items()}
            eval_metrics["epoch"] = epoch + 1
            probe = config.get("probe")
            if probe is not None and int(probe.num_inputs) > 1:
                eval_metrics.update(
                    time_variance(
                        eval_model,
                        variables,
                        test_images[: int(probe.num_inputs)],
                        int(probe.num_times),
                    )
                )
            writer.write(step, eval_metrics)
            checkpointer.save(
                step, state, metadata={"epoch": epoch + 1, "config": config}
            )
    checkpointer.close()
    if bar is not None:
        bar.close()
    return state


def load_checkpoint(workdir: str | os.PathLike):
    """The trained model of a `train_and_evaluate` run in `workdir`.

    Returns:
        `(model, variables, config)`: an `ODENet` in inference form (solve
        failures raise), `{"params": ...}` plus `"batch_stats"` with
        BatchNorm, and the run's `ml_collections.ConfigDict`.

    Raises:
        FileNotFoundError: when `workdir` has no `config.json` or no checkpoint.

    Example:
        >>> model, variables, config = load_checkpoint("runs/x")
    """
    workdir = os.fspath(workdir)
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no config.json in {workdir}: is it a `timeaware train-node` workdir?"
        )
    with open(path, encoding="utf-8") as file:
        config = ml_collections.ConfigDict(json.load(file))
    checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
    if checkpointer.latest_step() is None:
        checkpointer.close()
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints")
    # The step count per epoch only moves the decay boundaries, not the state.
    template = create_train_state(config, tuple(config.data.image_shape), 1)
    state = checkpointer.restore(template)
    checkpointer.close()
    model = make_model(config, training=False)
    return model, _variables(state.params, state.batch_stats), config


def _progress_bar(progress: bool, start: int, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train-node", unit="step")
