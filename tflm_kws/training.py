"""Training a keyword-spotting model into an output directory: config, run, resume, outputs.

  from tflm_kws import training
  config = training.config_from_options(output_dir="runs/demo", model="repcnn", epochs=20)
  metrics = training.train(config)

`python -m training.train` is the command line over this module (one flag per option of
`config_from_options`). Calling `train` again with the same config continues a killed run after
its last completed epoch (resume=True). The output directory (train_model.keras, fused.keras,
features.json, metrics.json, confusion_matrix.png, training_curves.png, logs/, checkpoints/) is
described in docs/training.md.
"""
import tflm_kws  # noqa: F401  (first: selects Keras 2 before TensorFlow loads)

import dataclasses
import glob
import inspect
import math
import os
import shutil
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tflm_kws import checkpointing
from tflm_kws import complexity
from tflm_kws import data as kws_data
from tflm_kws import frontend
from tflm_kws import io_utils
from tflm_kws import metrics
from tflm_kws import models
from tflm_kws import recipes
from tflm_kws import seeding

# Files of the output directory contract (docs/training.md).
TRAIN_MODEL = "train_model.keras"
FUSED_MODEL = "fused.keras"
FEATURES_JSON = "features.json"
METRICS_JSON = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "training_curves.png"
LOGS_DIR = "logs"
CHECKPOINTS_DIR = "checkpoints"
ARTIFACTS = (TRAIN_MODEL, FUSED_MODEL, FEATURES_JSON, METRICS_JSON, CONFUSION_PNG, CURVES_PNG)

LR_SCHEDULES = ("cosine", "constant")
CLASS_WEIGHTS = ("none", "balanced")
STRATEGIES = ("default", "mirrored", "multi_worker")
# DataSpec fields that have their own flag; --data_params may set only the others.
DATA_FLAG_FIELDS = ("data_dir", "wanted_words", "wake_word", "seed")
# Model-builder arguments that come from the data, not from --model_params.
MODEL_DATA_ARGS = ("input_shape", "num_classes")
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tflm_kws")


class UserInputError(ValueError):
    """A bad option or data set, named; the command line prints it without a traceback."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (the flags, parsed and validated)."""
    output_dir: str
    model: str = "repcnn"
    model_params: dict = dataclasses.field(default_factory=dict)
    data_spec: kws_data.DataSpec = dataclasses.field(default_factory=kws_data.DataSpec)
    frontend_config: frontend.FrontendConfig = dataclasses.field(
        default_factory=frontend.FrontendConfig)
    epochs: int = 30
    batch_size: int = 100
    learning_rate: float = 3e-3
    lr_schedule: str = "cosine"
    warmup_fraction: float = 0.05
    weight_decay: float = 1e-2
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.0
    # "balanced": each training example's loss weighted by N / (classes * n_class), so every
    # class weighs the same in total (real negatives outnumber a wake word's positives).
    class_weights: str = "none"
    seed: int = 0
    resume: bool = True
    fuse_every: int = 0
    cache_dir: str = DEFAULT_CACHE_DIR
    verbose: int = 1
    # Transfer: a training output directory (same model and model_params, any labels) whose
    # train_model.keras gives every layer but the classifier its starting weights.
    init_from: Optional[str] = None
    # Layers (by name) that keep init_from's weights: not trained, BatchNorm in inference mode --
    # a real-speech feature extractor the synthetic data can only read, not reshape.
    freeze: tuple = ()

    def __post_init__(self):
        checks = (("epochs", self.epochs >= 1, ">= 1"),
                  ("batch_size", self.batch_size >= 1, ">= 1"),
                  ("learning_rate", self.learning_rate > 0, "> 0"),
                  ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {list(LR_SCHEDULES)}"),
                  ("warmup_fraction", 0 <= self.warmup_fraction <= 0.5, "in [0, 0.5]"),
                  ("weight_decay", self.weight_decay >= 0, ">= 0"),
                  ("mixup_alpha", math.isfinite(self.mixup_alpha) and self.mixup_alpha >= 0,
                   "a number >= 0 (0: no mixup)"),
                  ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
                  ("fuse_every", self.fuse_every >= 0, ">= 0"),
                  ("class_weights", self.class_weights in CLASS_WEIGHTS,
                   f"one of {list(CLASS_WEIGHTS)}"))
        for name, ok, want in checks:
            if not ok:
                raise UserInputError(f"--{name} must be {want}, got {getattr(self, name)!r}")
        if self.freeze and not self.init_from:
            raise UserInputError(f"--freeze={','.join(self.freeze)} needs --init_from: frozen "
                                 f"layers keep transferred weights")

    def identity(self):
        """What must match for a run in output_dir to be resumed by this config."""
        identity = {
            "model": self.model, "model_params": self.model_params,
            "data": self.data_spec.to_dict(),
            "frontend": self.frontend_config.to_dict(), "epochs": self.epochs,
            "batch_size": self.batch_size, "learning_rate": self.learning_rate,
            "lr_schedule": self.lr_schedule, "warmup_fraction": self.warmup_fraction,
            "weight_decay": self.weight_decay, "seed": self.seed}
        if self.mixup_alpha:
            # Only when on: runs recorded before mixup existed stay resumable.
            identity["mixup_alpha"] = self.mixup_alpha
        if self.label_smoothing:
            identity["label_smoothing"] = self.label_smoothing
        if self.class_weights != "none":
            identity["class_weights"] = self.class_weights
        if self.init_from:
            identity["init_from"] = self.init_from
        if self.freeze:
            identity["freeze"] = list(self.freeze)
        return checkpointing.canonical(identity)


def model_hparams(name, overrides):
    """The model's effective hyper-parameters: its builder's defaults updated with `overrides`."""
    builder = models.MODELS[name]
    signature = inspect.signature(builder)
    named = {p.name: p for p in signature.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.name not in MODEL_DATA_ARGS}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
    clash = sorted(set(overrides) & set(MODEL_DATA_ARGS))
    if clash:
        raise UserInputError(f"--model_params may not set {clash}: they come from the data")
    unknown = sorted(set(overrides) - set(named))
    if unknown and not takes_any:
        raise UserInputError(f"--model_params: model '{name}' has no hyper-parameter(s) {unknown}; "
                             f"its hyper-parameters are {sorted(named)}")
    hparams = {key: p.default for key, p in named.items() if p.default is not p.empty}
    hparams.update(overrides)
    return checkpointing.canonical(hparams)


# config_from_options' options: the command line's flags (but --strategy), under the same names.
OPTION_NAMES = ("output_dir", "data_dir", "wanted_words", "wake_word", "data_params",
                "frontend_params", "model", "model_params", "data_seed", "epochs", "batch_size",
                "learning_rate", "lr_schedule", "warmup_fraction", "weight_decay", "mixup_alpha",
                "label_smoothing", "class_weights", "seed", "resume", "fuse_every", "cache_dir",
                "verbose", "init_from", "freeze")


def config_from_options(output_dir, *, data_dir=None, wanted_words=None, wake_word=None,
                        data_params=None, frontend_params=None, model="repcnn", model_params=None,
                        data_seed=0, **training_options):
    """TrainConfig from the options `python -m training.train` has as flags (same names; the
    *_params are dicts); UserInputError names the option that is wrong.

    training_options: the other TrainConfig fields (epochs, batch_size, learning_rate, lr_schedule,
    warmup_fraction, weight_decay, mixup_alpha, label_smoothing, class_weights, seed, resume,
    fuse_every, cache_dir, verbose). The recipe options a caller leaves out (or passes as None),
    and the augmentation fields its data_params leave out, are the model's default recipe
    (`tflm_kws.recipes.recipe(model)`).
    """
    settable = {f.name for f in dataclasses.fields(TrainConfig)} - {
        "output_dir", "model", "model_params", "data_spec", "frontend_config"}
    unknown = sorted(set(training_options) - settable)
    if unknown:
        raise UserInputError(f"unknown training option(s) {unknown}")
    data_params = dict(data_params or {})
    clash = sorted(set(data_params) & set(DATA_FLAG_FIELDS))
    if clash:
        raise UserInputError(f"--data_params may not set {clash}: use the flag(s) "
                             f"{', '.join('--' + c for c in clash)}")
    if model not in models.MODELS:
        raise UserInputError(f"--model={model!r} is not one of {sorted(models.MODELS)}")
    defaults = recipes.recipe(model)
    data_params = dict(defaults.pop("data_params"), **data_params)
    for name, value in defaults.items():
        if training_options.get(name) is None:
            training_options[name] = value
    if not output_dir or not str(output_dir).strip():
        raise UserInputError("--output_dir must not be empty")
    spec_dict = dict(data_params, data_dir=os.path.abspath(data_dir) if data_dir else None,
                     wanted_words=wanted_words, seed=data_seed,
                     wake_word=wake_word or kws_data.DataSpec().wake_word)
    for name in ("negatives_dir", "positives_dir"):
        if spec_dict.get(name):
            spec_dict[name] = os.path.abspath(os.path.expanduser(spec_dict[name]))
    try:
        spec = kws_data.DataSpec.from_dict(spec_dict)
    except (TypeError, ValueError) as e:
        raise UserInputError(f"--data_params / data flags: {e}") from None
    try:
        frontend_config = frontend.FrontendConfig.from_dict(dict(frontend_params or {}))
    except (TypeError, ValueError) as e:
        raise UserInputError(f"--frontend_params: {e}") from None
    if training_options.get("init_from"):
        training_options["init_from"] = os.path.abspath(training_options["init_from"])
    if "freeze" in training_options:
        training_options["freeze"] = tuple(training_options["freeze"] or ())
    if "cache_dir" in training_options:
        training_options["cache_dir"] = os.path.abspath(
            os.path.expanduser(training_options["cache_dir"]))
    return TrainConfig(output_dir=os.path.abspath(output_dir), model=model,
                       model_params=model_hparams(model, dict(model_params or {})),
                       data_spec=spec, frontend_config=frontend_config, **training_options)


def make_strategy(name):
    """The tf.distribute strategy called `name` (one of STRATEGIES)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserInputError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                                 "(cluster and task of this worker; see docs/training.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserInputError(f"--strategy={name!r} is not one of {list(STRATEGIES)}")


def learning_rate_schedule(config, steps_per_epoch):
    """Constant, or linear warm-up then cosine decay to 0 over all the run's steps."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = int(round(config.warmup_fraction * total_steps))
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=total_steps - warmup_steps,
        warmup_target=config.learning_rate, warmup_steps=warmup_steps)


def _prepare_output_dir(config):
    """Checks/creates output_dir and returns the state to resume from (None: start afresh)."""
    out = config.output_dir
    checkpoint_dir = os.path.join(out, CHECKPOINTS_DIR)
    run_file = os.path.join(checkpoint_dir, checkpointing.RUN_FILE)
    state_file = os.path.join(checkpoint_dir, checkpointing.STATE_FILE)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserInputError(f"--output_dir={out} exists and is not a directory")
    has_run = os.path.exists(run_file)
    if has_run and config.resume:
        try:
            checkpointing.check_identity(checkpoint_dir, config.identity(), out)
        except checkpointing.RunMismatchError as e:
            raise UserInputError(str(e)) from None
        _remove_interrupted_writes(out)
        if os.path.exists(state_file):
            return checkpointing.read_json(state_file)
        return None
    leftovers = [name for name in ARTIFACTS if os.path.exists(os.path.join(out, name))]
    if not has_run and leftovers and config.resume:
        raise UserInputError(f"--output_dir={out} holds {leftovers} but no {CHECKPOINTS_DIR}/"
                             f"{checkpointing.RUN_FILE}: not a run this command can resume. Choose "
                             f"another --output_dir, or pass --noresume to overwrite them.")
    # Start over: remove what a previous run of ours left (nothing else in the directory).
    for name in leftovers:
        os.remove(os.path.join(out, name))
    for name in (CHECKPOINTS_DIR, LOGS_DIR):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    return None


def _remove_interrupted_writes(out):
    """Deletes what a killed process was writing: io_utils temp files, TF checkpoint temp dirs."""
    checkpoint_dir = os.path.join(out, CHECKPOINTS_DIR)
    for path in (glob.glob(os.path.join(out, "*.tmp-*")) +
                 glob.glob(os.path.join(checkpoint_dir, "*.tmp-*"))):
        os.remove(path)
    for path in glob.glob(os.path.join(checkpoint_dir, "ckpt-*_temp")):
        shutil.rmtree(path, ignore_errors=True)


def _distribute_options(dataset, strategy):
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # The examples come from an in-memory/cached source, not one file per shard.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        return dataset.with_options(options)
    return dataset


def _steps_per_epoch(dataset, num_examples, batch_size):
    cardinality = int(dataset.cardinality())
    if cardinality > 0:
        return cardinality
    return math.ceil(num_examples / batch_size)


@keras.saving.register_keras_serializable(package="tflm_kws")
class SoftCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits against integer labels (validation) or soft labels [B, classes]
    (mixup's training batches), with optional label smoothing: one loss for both, as Keras
    compiles one for fit and validation."""

    def __init__(self, label_smoothing=0.0, name="soft_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        if not _soft(y_true, y_pred):
            y_true = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(y_true, y_pred, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return dict(super().get_config(), label_smoothing=self.label_smoothing)


@keras.saving.register_keras_serializable(package="tflm_kws")
def hard_label_accuracy(y_true, y_pred):
    """Top-1 accuracy against integer labels, or against the dominant class of soft labels (a
    mixed example counts as right when the model picks the clip that has the larger weight)."""
    if _soft(y_true, y_pred):
        y_true = tf.argmax(y_true, axis=-1)
    return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)


def _soft(y_true, y_pred):
    # Integer labels arrive as [B] or [B, 1]; soft labels as [B, classes] (classes >= 3).
    return y_true.shape.rank == 2 and y_true.shape[-1] == y_pred.shape[-1]


def loss_and_metrics(config):
    """The compiled loss and metrics: Keras' sparse ones, or with mixup / label smoothing ones that
    take soft labels too (the logs keep the names loss / accuracy either way)."""
    if config.mixup_alpha > 0 or config.label_smoothing > 0:
        return SoftCrossEntropy(config.label_smoothing), [
            keras.metrics.MeanMetricWrapper(hard_label_accuracy, name="accuracy")]
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]


def class_weight_map(labels, num_classes, kind):
    """Keras' class_weight for the training labels (int [N]): None for "none"; for "balanced"
    N / (num_classes * n_c) per class (1.0 for a class without examples: it has no loss)."""
    if kind == "none":
        return None
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    return {c: float(len(labels) / (num_classes * n)) if n else 1.0
            for c, n in enumerate(counts)}


def _evaluate(model, data, split):
    x, y = data.features(split)
    predictions = metrics.predict_classes(model, frontend.features_to_model_input(x))
    return y, predictions


def _throughput(history, train_examples):
    """Training samples/s over steady-state epochs (each process's first epoch also traces)."""
    steady = [h for h in history if not h["first_epoch_of_session"]] or history
    seconds = sum(h["train_seconds"] for h in steady)
    return train_examples * len(steady) / seconds if seconds > 0 else float("nan")


def train(config, strategy=None):
    """Trains per `config` (a TrainConfig), writes the output directory, and returns the metrics
    dict (None on a non-chief worker of multi-worker training)."""
    session_start = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    chief = checkpointing.is_chief(strategy)
    out = config.output_dir
    checkpoint_dir = os.path.join(out, CHECKPOINTS_DIR)
    state = _prepare_output_dir(config) if chief else None
    try:
        checkpointing.check_shared_output_dir(strategy, checkpoint_dir, chief)
    except checkpointing.SharedDirectoryError as e:
        raise UserInputError(str(e)) from None
    if state is None and not chief and os.path.exists(
            os.path.join(checkpoint_dir, checkpointing.STATE_FILE)):
        state = checkpointing.read_json(os.path.join(checkpoint_dir, checkpointing.STATE_FILE))
    state = state or {}
    initial_epoch = int(state.get("epochs_completed", 0))
    metrics_path = os.path.join(out, METRICS_JSON)
    if initial_epoch >= config.epochs and os.path.exists(metrics_path):
        print(f"{out}: training already complete ({initial_epoch} epochs); nothing to do",
              flush=True)
        return checkpointing.read_json(metrics_path)

    try:
        data = kws_data.load(config.data_spec, config.frontend_config, config.cache_dir)
    except (ValueError, FileNotFoundError) as e:
        raise UserInputError(f"data: {e}") from None
    labels = list(data.labels)
    run_file = os.path.join(checkpoint_dir, checkpointing.RUN_FILE)
    if chief and not os.path.exists(run_file):  # only once the data is known to load
        os.makedirs(checkpoint_dir, exist_ok=True)
        io_utils.atomic_write_json(run_file, config.identity())
    if chief:
        frontend.save_features_json(os.path.join(out, FEATURES_JSON), config.frontend_config,
                                    labels, config.data_spec.to_dict())
    num_examples = {split: int(data.num_examples(split))
                    for split in ("training", "validation", "testing")}
    print(f"Data: {num_examples} examples, labels {labels}", flush=True)

    # Seeded per session start: a resumed run is deterministic given the epoch it resumes at.
    seeding.set_seed(config.seed + initial_epoch)
    train_ds = _distribute_options(data.dataset("training", config.batch_size, training=True,
                                                seed=config.seed + initial_epoch,
                                                mixup_alpha=config.mixup_alpha), strategy)
    val_ds = _distribute_options(data.dataset("validation", config.batch_size, training=False),
                                 strategy)
    steps_per_epoch = _steps_per_epoch(train_ds, num_examples["training"], config.batch_size)
    input_shape = (*config.frontend_config.feature_shape, 1)

    with strategy.scope():
        try:
            model = models.build(config.model, input_shape, len(labels), **config.model_params)
        except ValueError as e:
            raise UserInputError(f"--model_params: {e}") from None
        frozen = frozen_layers(model, config.freeze)
        # Weights are copied before freezing: a frozen layer lists them in another order.
        if config.init_from and not initial_epoch:
            copied = initialize_from(model, config.init_from)
            not_copied = [name for name in config.freeze if name not in copied]
            if not_copied:
                raise UserInputError(f"--freeze: layer(s) {not_copied} do not match --init_from="
                                     f"{config.init_from!r} in name and shapes, so they would "
                                     f"stay frozen at random weights")
            print(f"Transfer: {len(copied)} layer(s) start from {config.init_from}"
                  + (f", {len(config.freeze)} frozen" if config.freeze else ""), flush=True)
        for layer in frozen:
            layer.trainable = False
        optimizer = keras.optimizers.AdamW(
            learning_rate=learning_rate_schedule(config, steps_per_epoch),
            weight_decay=config.weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        loss, train_metrics = loss_and_metrics(config)
        model.compile(optimizer=optimizer, loss=loss, metrics=train_metrics)
        # Slot variables exist before a restore, so every saved value has its variable to go to.
        optimizer.build(model.trainable_variables)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    if initial_epoch:
        path = os.path.join(checkpoint_dir, state["checkpoint"])
        checkpoint.restore(path).assert_existing_objects_matched()
        print(f"Resuming after epoch {initial_epoch} of {config.epochs} from {path}", flush=True)

    x_probe, _ = data.features("validation")
    probe = frontend.features_to_model_input(x_probe[:64])
    epoch_checkpoint = checkpointing.EpochCheckpoint(checkpoint_dir, checkpoint, state,
                                                     num_examples["training"], chief=chief,
                                                     session_start=session_start)
    callbacks = [
        # At the end of training the best weights are restored before RepFuseCallback fuses,
        # verifies and saves them; after each epoch RepFuseCallback (with --fuse_every) adds
        # fused_val_accuracy to the logs before EpochCheckpoint and TensorBoard record them.
        keras.callbacks.LambdaCallback(on_train_end=lambda logs: epoch_checkpoint.restore_best()),
        tflm_kws.RepFuseCallback(validation_data=val_ds, probe_batch=probe,
                                 save_path=os.path.join(out, FUSED_MODEL) if chief else None,
                                 every_n_epochs=config.fuse_every),
        epoch_checkpoint,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(os.path.join(out, LOGS_DIR), update_freq="epoch",
                                    profile_batch=0, write_graph=False),
    ]
    class_weight = class_weight_map(data.features("training")[1], len(labels),
                                    config.class_weights)
    if class_weight:
        print("Class weights: " + ", ".join(f"{labels[c]} {w:.3f}"
                                            for c, w in class_weight.items()), flush=True)
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, initial_epoch=initial_epoch,
              callbacks=callbacks, verbose=config.verbose, class_weight=class_weight)
    if not chief:
        shutil.rmtree(os.path.join(checkpoint_dir, checkpointing.SCRATCH_DIR), ignore_errors=True)
        return None
    return _finalize(config, data, labels, num_examples, state, steps_per_epoch, model,
                     epoch_checkpoint.last_commit_time)


def frozen_layers(model, names):
    """The layers of `model` named by --freeze; UserInputError names one it does not have."""
    layers = {layer.name: layer for layer in model.layers}
    unknown = [name for name in names if name not in layers or not layers[name].weights]
    if unknown:
        with_weights = [layer.name for layer in model.layers if layer.weights]
        raise UserInputError(f"--freeze: '{model.name}' has no layer(s) with weights {unknown}; "
                             f"its layers with weights are {with_weights}")
    return [layers[name] for name in names]


def initialize_from(model, run_dir):
    """Copies into `model` the weights of every layer of run_dir's train_model.keras with the same
    name and weight shapes (all but a classifier with another number of labels). Returns the
    copied layers' names; UserInputError when run_dir has no such model or nothing matches."""
    path = os.path.join(run_dir, TRAIN_MODEL)
    if not os.path.isfile(path):
        raise UserInputError(f"--init_from={run_dir!r}: no {TRAIN_MODEL} there (a finished "
                             f"training output directory is needed)")
    source = {layer.name: layer for layer in keras.models.load_model(path, compile=False).layers}
    copied = []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or layer.name not in source:
            continue
        theirs = source[layer.name].get_weights()
        if [w.shape for w in theirs] == [w.shape for w in weights]:
            layer.set_weights(theirs)
            copied.append(layer.name)
    if not copied:
        raise UserInputError(f"--init_from={run_dir!r}: no layer of its model matches "
                             f"'{model.name}' in name and shapes (same --model and --model_params "
                             f"needed)")
    return copied


def _finalize(config, data, labels, num_examples, state, steps_per_epoch, trained_model,
              last_commit_time):
    """Writes train_model.keras, metrics.json and the plots from the best model and fused.keras."""
    out = config.output_dir
    best = state["best"]
    with io_utils.atomic_write(os.path.join(out, TRAIN_MODEL)) as dst, open(
            os.path.join(out, CHECKPOINTS_DIR, best["model"]), "rb") as src:
        shutil.copyfileobj(src, dst)
    # Evaluate the artifacts as saved, i.e. what conversion will load.
    multi_branch = keras.models.load_model(os.path.join(out, TRAIN_MODEL), compile=False)
    fused = keras.models.load_model(os.path.join(out, FUSED_MODEL), compile=False)
    results = {}
    for split, key in (("validation", "val"), ("testing", "test")):
        y, predicted = _evaluate(multi_branch, data, split)
        _, fused_predicted = _evaluate(fused, data, split)
        results[f"{key}_accuracy"] = metrics.accuracy(y, predicted)
        results[f"fused_{key}_accuracy"] = metrics.accuracy(y, fused_predicted)
        results[f"fused_{key}_agreement"] = metrics.accuracy(predicted, fused_predicted)
        if split == "testing":
            cm = metrics.confusion_matrix(y, predicted, num_classes=len(labels))
            metrics.plot_confusion_matrix(cm, labels, os.path.join(out, CONFUSION_PNG),
                                          title=f"{config.model}, test split")
            results["test_confusion_matrix"] = cm.tolist()
    history = state["history"]
    metrics.plot_training_curves(
        {key: [h[key] for h in history] for key in ("loss", "val_loss", "accuracy", "val_accuracy")
         if all(key in h for h in history)},
        os.path.join(out, CURVES_PNG))
    deploy = complexity.count_params_and_macs(fused)
    result = {
        "model": config.model,
        "hparams": config.model_params,
        "labels": labels,
        "epochs": int(state["epochs_completed"]),
        "best_epoch": int(best["epoch"]),
        "params": int(deploy["params"]),
        "macs": int(deploy["macs"]),
        "train_params": int(trained_model.count_params()),
        **results,
        "train_samples_per_second": _throughput(history, num_examples["training"]),
        "steps_per_epoch": int(steps_per_epoch),
        "num_examples": num_examples,
        "wall_seconds": float(state["wall_seconds"]) + time.perf_counter() - last_commit_time,
        "data": config.data_spec.to_dict(),
        "frontend": config.frontend_config.to_dict(),
        "cache_dir": config.cache_dir,
        "training": {"batch_size": config.batch_size, "learning_rate": config.learning_rate,
                     "lr_schedule": config.lr_schedule,
                     "warmup_fraction": config.warmup_fraction,
                     "weight_decay": config.weight_decay, "mixup_alpha": config.mixup_alpha,
                     "label_smoothing": config.label_smoothing,
                     "class_weights": config.class_weights,
                     "optimizer": "AdamW",
                     "seed": config.seed},
        "history": history,
    }
    io_utils.atomic_write_json(os.path.join(out, METRICS_JSON), result)
    return result
