"""Epoch-state checkpoints of a training run: what makes a killed run resume with nothing lost.

`checkpoints/` of an output directory holds
  run.json        the run's identity (model, hyper-parameters, data, frontend, optimizer recipe);
                  a later command must match it to resume (see `check_identity`).
  ckpt-<E>.*      tf.train.Checkpoint after epoch E: model variables (weights, BatchNorm statistics,
                  any RNG state the layers track) and the optimizer (moments and `iterations`, which
                  is the learning-rate schedule's position). The last `KEEP_CHECKPOINTS` are kept.
  best-<E>.keras  the best-on-validation model so far (epoch E); older ones are removed.
  state.json      the commit record, written last after every epoch: epochs completed, the
                  checkpoint and best model belonging to them, the per-epoch history and timings.
A kill at any instant leaves state.json naming files that are complete, so a resumed run continues
after the last epoch that state.json records.
"""
import glob
import json
import os
import secrets
import time

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from tflm_kws import io_utils

KEEP_CHECKPOINTS = 3
RUN_FILE = "run.json"
STATE_FILE = "state.json"
SCRATCH_DIR = "worker-scratch"  # a non-chief worker's saves in multi-worker training
HANDSHAKE_FILE = "workers.json"  # the chief's token that every worker must read at start


class RunMismatchError(ValueError):
    """The output directory holds a run made by a different command."""


def canonical(obj):
    """JSON-normal form (tuples -> lists, sorted keys) so that identities compare by value."""
    return json.loads(json.dumps(obj, sort_keys=True))


def read_json(path):
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None


def check_identity(checkpoint_dir, identity, output_dir):
    """Raises RunMismatchError when checkpoint_dir/run.json records a different run identity."""
    previous = read_json(os.path.join(checkpoint_dir, RUN_FILE))
    identity = canonical(identity)
    if previous == identity:
        return
    differences = []
    for key in sorted(set(previous) | set(identity)):
        if previous.get(key) != identity.get(key):
            differences.append(f"  {key}: {json.dumps(previous.get(key), sort_keys=True)} there, "
                               f"{json.dumps(identity.get(key), sort_keys=True)} now")
    raise RunMismatchError(
        f"--output_dir={output_dir} holds a run made by a different command, so it cannot be "
        f"resumed:\n" + "\n".join(differences) +
        "\nChoose another --output_dir, or pass --noresume to discard that run and start over.")


def is_chief(strategy):
    """True for the one worker that writes artifacts (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True
    cluster = resolver.cluster_spec().as_dict()
    if not cluster or resolver.task_type in (None, "chief"):
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


class SharedDirectoryError(RuntimeError):
    """A worker of multi-worker training does not see the chief's output directory."""


def _sum_over_replicas(strategy, value_fn):
    """Sum over every replica of the cluster of value_fn(global replica id), a float64 tensor."""
    def replica_fn():
        return value_fn(tf.distribute.get_replica_context().replica_id_in_sync_group)
    return float(strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_fn), axis=None))


def check_shared_output_dir(strategy, checkpoint_dir, chief):
    """In multi-worker training every worker reads the chief's checkpoints and best model, so all
    must see one --output_dir. The chief writes a fresh random token there, every worker learns it
    through an all-reduce and reads the file back, and a second all-reduce tells every worker
    whether all succeeded: SharedDirectoryError on every worker, before any training, if not."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    path = os.path.join(checkpoint_dir, HANDSHAKE_FILE)
    token = float(secrets.randbelow(2 ** 50) + 1) if chief else 0.0
    if chief:
        os.makedirs(checkpoint_dir, exist_ok=True)
        io_utils.atomic_write_json(path, {"token": token})
    # Only global replica 0 (on the chief) contributes: the sum is the chief's token everywhere.
    shared = _sum_over_replicas(strategy, lambda replica_id: tf.where(
        tf.equal(replica_id, 0), tf.constant(token, tf.float64), tf.constant(0.0, tf.float64)))
    try:
        sees = read_json(path).get("token") == shared
    except (OSError, ValueError):
        sees = False
    verdict = 0.0 if sees else 1.0
    failures = _sum_over_replicas(strategy, lambda _: tf.constant(verdict, tf.float64))
    if failures:
        output_dir = os.path.dirname(checkpoint_dir)
        if sees:
            raise SharedDirectoryError(
                f"another worker cannot read {path}, which this worker (the chief) wrote: every "
                f"worker's --output_dir must be the same directory on a filesystem all workers "
                f"share (here {output_dir})")
        raise SharedDirectoryError(
            f"this worker does not see the chief's {path}: --output_dir={output_dir} must be the "
            f"chief's output directory, on a filesystem all workers share (not a local or "
            f"misspelt path)")


class EpochCheckpoint(keras.callbacks.Callback):
    """Commits the whole training state after every epoch and keeps the best-on-validation model.

    Also times the training part of each epoch (from epoch begin to the start of validation), which
    is what `train_samples_per_second` is computed from. `restore_best()` loads the best model's
    weights into the model, for the end of training.

    Args:
      checkpoint_dir: the run's checkpoints/ directory.
      checkpoint: tf.train.Checkpoint over the model and its optimizer.
      state: the state dict read from state.json (or a fresh one); updated in place.
      train_examples: number of training examples per epoch.
      chief: whether this worker writes files other than its own checkpoint.
      monitor: validation metric to maximise.
      session_start: time.perf_counter() at the start of this process's run (default: now).
    """

    def __init__(self, checkpoint_dir, checkpoint, state, train_examples, chief=True,
                 monitor="val_accuracy", session_start=None):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.state = state
        self.train_examples = int(train_examples)
        self.chief = chief
        self.monitor = monitor
        # Multi-worker: saving reads synchronised variables (BatchNorm statistics, metrics), which
        # takes every worker, so all of them save the same things; non-chiefs to a scratch dir.
        self._write_dir = checkpoint_dir if chief else os.path.join(checkpoint_dir, SCRATCH_DIR)
        self.manager = tf.train.CheckpointManager(checkpoint, self._write_dir,
                                                  max_to_keep=KEEP_CHECKPOINTS,
                                                  checkpoint_name="ckpt")
        # Wall time of the run = each session's time up to its last committed epoch, summed.
        self.last_commit_time = session_start if session_start is not None else time.perf_counter()
        self._committed_seconds = float(state.get("wall_seconds", 0.0))
        self._epoch_start = None
        self._train_seconds = None
        self._session_first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._session_first_epoch is None:
            self._session_first_epoch = epoch
        self._epoch_start = time.perf_counter()
        self._train_seconds = None

    def on_test_begin(self, logs=None):
        if self._epoch_start is not None and self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self.monitor not in logs:
            raise ValueError(f"EpochCheckpoint: '{self.monitor}' missing from the epoch logs "
                             f"{sorted(logs)}; training needs validation data")
        train_seconds = self._train_seconds
        if train_seconds is None:
            train_seconds = time.perf_counter() - self._epoch_start
        record = {key: float(value) for key, value in logs.items()}
        record["learning_rate"] = float(tf.convert_to_tensor(
            self.model.optimizer.learning_rate))  # the value at the epoch's last step
        record["train_seconds"] = train_seconds
        # The first epoch of each process also traces the graphs and fills caches: not steady state.
        record["first_epoch_of_session"] = epoch == self._session_first_epoch
        completed = epoch + 1

        path = self.manager.save(checkpoint_number=completed)
        best = self.state.get("best")
        if best is None or record[self.monitor] > best["value"]:
            best = {"epoch": completed, "value": record[self.monitor], "metric": self.monitor,
                    "model": f"best-{completed:04d}.keras"}
            io_utils.atomic_save_keras(self.model, os.path.join(self._write_dir, best["model"]))
        now = time.perf_counter()
        history = self.state.setdefault("history", [])
        del history[epoch:]  # an epoch redone after a kill replaces its uncommitted record
        history.append(record)
        self.state.update({
            "epochs_completed": completed,
            "checkpoint": os.path.basename(path),
            "best": best,
            "wall_seconds": self._committed_seconds + now - self.last_commit_time,
        })
        if self.chief:
            io_utils.atomic_write_json(os.path.join(self.checkpoint_dir, STATE_FILE), self.state)
        self._committed_seconds, self.last_commit_time = self.state["wall_seconds"], now
        remove_uncommitted_best(self._write_dir, best["model"])

    def restore_best(self):
        """Loads the best-on-validation weights into the model (every worker, from the chief's file:
        multi-worker training needs output_dir on a filesystem all workers share)."""
        best = self.state.get("best")
        if best is not None:
            best_model = keras.models.load_model(os.path.join(self.checkpoint_dir, best["model"]),
                                                 compile=False)
            self.model.set_weights(best_model.get_weights())


def remove_uncommitted_best(checkpoint_dir, keep):
    """Deletes best-*.keras files other than `keep` (superseded, or written by a killed epoch)."""
    for path in glob.glob(os.path.join(checkpoint_dir, "best-*.keras")):
        if os.path.basename(path) != keep:
            os.remove(path)
