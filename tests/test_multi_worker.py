"""Multi-worker training (tf.distribute.MultiWorkerMirroredStrategy) through the command line: two
worker processes on 127.0.0.1, each with its TF_CONFIG, as docs/training.md tells users to run it.

Data: the Speech Commands fixture (tests/fixtures), classes yes / no, model `cnn`.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from tflm_kws import recipes

FIXTURE = REPO / "tests" / "fixtures" / "speech_commands_mini"
TIMEOUT_S = 420


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# The recipe the tolerance below was measured with (the base recipe), spelled out, so that a
# change of cnn's default recipe does not change what this test compares. Dropout is off: its
# masks are drawn per replica, so two workers draw other masks than one process does and the
# curves would differ by more than the all-reduce's summation order. SpecAugment (seeded per
# example since) stays off as when the tolerance was measured.
_RECIPE = dict(recipes.BASE_RECIPE, data_params=dict(recipes.BASE_RECIPE["data_params"],
                                                     augment_variants=1, time_masks=0,
                                                     freq_masks=0))


def _argv(output_dir, cache_dir, epochs, *extra):
    recipe = [f"--{name}={value}" for name, value in sorted(_RECIPE.items())
              if name not in ("epochs", "batch_size", "data_params")]
    return [sys.executable, "-m", "training.train", "--model=cnn", f"--data_dir={FIXTURE}",
            "--wanted_words=yes,no", f"--epochs={epochs}", "--batch_size=8",
            f"--output_dir={output_dir}", f"--cache_dir={cache_dir}",
            f"--data_params={json.dumps(_RECIPE['data_params'])}", '--model_params={"dropout": 0}',
            *recipe, *extra]


def _start_workers(output_dirs, cache_dir, epochs):
    ports = _free_ports(len(output_dirs))
    workers = []
    for index, output_dir in enumerate(output_dirs):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), CUDA_VISIBLE_DEVICES="")
        workers.append(subprocess.Popen(
            _argv(output_dir, cache_dir, epochs, "--strategy=multi_worker"),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True))
    return workers


def _finish(workers, timeout=TIMEOUT_S):
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=max(1, deadline - time.monotonic()))
            outputs.append((worker.returncode, out, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.communicate()
    return outputs


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def one_worker_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("one_worker")
    proc = subprocess.run(_argv(out, cache_dir, 2), cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT_S, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


CONTRACT = {"train_model.keras", "fused.keras", "features.json", "metrics.json",
            "confusion_matrix.png", "training_curves.png", "logs", "checkpoints"}


def test_two_workers_finish_and_train_as_one_with_the_same_global_batch(tmp_path, cache_dir,
                                                                         one_worker_run):
    out = tmp_path / "shared_run"
    results = _finish(_start_workers([out, out], cache_dir, epochs=2))
    for index, (code, _, err) in enumerate(results):
        assert code == 0, f"worker {index} failed:\n{err[-3000:]}"
    assert CONTRACT <= {p.name for p in out.iterdir()}
    # The non-chief's own checkpoints went to a scratch directory it removed at the end.
    assert not (out / "checkpoints" / "worker-scratch").exists()
    chief = json.loads((out / "metrics.json").read_text())
    assert chief["epochs"] == 2 and len(chief["history"]) == 2
    # Same data, seed and global batch (8 = 4 per worker), no per-replica random draws: the same
    # number of steps and the same learning curve, within 0.1 % of training loss per epoch for
    # the all-reduce's summation order (measured: equal to 4 decimals).
    assert chief["steps_per_epoch"] == one_worker_run["steps_per_epoch"]
    print("training loss per epoch, two workers / one:",
          [(round(a["loss"], 4), round(b["loss"], 4))
           for a, b in zip(chief["history"], one_worker_run["history"])])
    for two, one in zip(chief["history"], one_worker_run["history"]):
        assert abs(two["loss"] - one["loss"]) < 1e-3 * one["loss"], (two["loss"], one["loss"])
    assert chief["params"] == one_worker_run["params"]


def test_worker_whose_output_dir_is_not_the_chiefs_stops_at_start(tmp_path, cache_dir):
    chief_dir, other_dir = tmp_path / "chief", tmp_path / "typo"
    start = time.monotonic()
    (chief_code, chief_out, chief_err), (code, out, err) = _finish(
        _start_workers([chief_dir, other_dir], cache_dir, epochs=2), timeout=240)
    assert code != 0 and chief_code != 0
    assert "does not see the chief's" in err and str(other_dir) in err, err[-3000:]
    assert "another worker cannot read" in chief_err, chief_err[-3000:]
    for text in (out, chief_out, err, chief_err):
        assert "Traceback" not in text and "Epoch 1/" not in text
    assert not (chief_dir / "metrics.json").exists()
    assert not (other_dir / "checkpoints" / "worker-scratch").exists()
    assert time.monotonic() - start < 240


def test_killed_workers_resume_from_the_last_committed_epoch(tmp_path, cache_dir):
    out = tmp_path / "run"
    workers = _start_workers([out, out], cache_dir, epochs=3)
    state = out / "checkpoints" / "state.json"
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if state.exists() and json.loads(state.read_text())["epochs_completed"] >= 1:
                break
            assert all(w.poll() is None for w in workers), "a worker exited early"
            time.sleep(0.5)
        else:
            pytest.fail("no epoch committed in time")
    finally:
        # Worker 1 dies; as docs/training.md says, the others are stopped and all restarted.
        for worker in reversed(workers):
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.communicate()
    committed = json.loads(state.read_text())["epochs_completed"]
    assert 1 <= committed < 3
    results = _finish(_start_workers([out, out], cache_dir, epochs=3))
    for index, (code, stdout, err) in enumerate(results):
        assert code == 0, f"worker {index} failed on resume:\n{err[-3000:]}"
    assert f"Resuming after epoch {committed} of 3" in results[0][1]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and len(metrics["history"]) == 3
