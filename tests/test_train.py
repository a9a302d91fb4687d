"""python -m training.train: the output-directory contract, fused == multi-branch, resume after
SIGKILL, refusing a different command's run, and named errors for bad flags.

Data: the Speech Commands fixture (36 clips of yes/no/bed/cat, tests/fixtures), classes yes and no
(+ _silence_, _unknown_), one augmentation variant: seconds per epoch even on a busy 2-core box.
"""
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from absl import flags
import numpy as np
import pytest

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from tflm_kws import data as kws_data
from tflm_kws import frontend
from tflm_kws import metrics as kws_metrics
from tflm_kws import training
from training import train as train_cli

from conftest import assert_is_plot

REPO = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "speech_commands_mini"
WORDS = ["yes", "no"]
DATA_PARAMS = {"augment_variants": 1}
CONTRACT = ("train_model.keras", "fused.keras", "features.json", "metrics.json",
            "confusion_matrix.png", "training_curves.png", "logs", "checkpoints")
METRIC_KEYS = ("model", "hparams", "labels", "epochs", "params", "macs", "val_accuracy",
               "test_accuracy", "fused_val_accuracy", "fused_test_accuracy",
               "train_samples_per_second", "wall_seconds", "data", "cache_dir")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kws_cache")


def _config(output_dir, cache_dir, **overrides):
    fields = dict(output_dir=str(output_dir), model="repcnn",
                  model_params=training.model_hparams("repcnn", {}),
                  data_spec=kws_data.DataSpec(data_dir=str(FIXTURE), wanted_words=WORDS,
                                              **DATA_PARAMS),
                  epochs=1, batch_size=16, cache_dir=str(cache_dir), verbose=0)
    fields.update(overrides)
    return training.TrainConfig(**fields)


def _cli(output_dir, cache_dir, *extra):
    return [sys.executable, "-m", "training.train", "--model=repcnn", f"--output_dir={output_dir}",
            f"--cache_dir={cache_dir}", f"--data_dir={FIXTURE}",
            f"--wanted_words={','.join(WORDS)}",
            f"--data_params={json.dumps(DATA_PARAMS)}", "--batch_size=16", *extra]


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("one_epoch") / "run"
    config = _config(out, cache_dir)
    result = training.train(config)
    return out, config, result


def _assert_contract(out, epochs):
    for name in CONTRACT:
        assert (out / name).exists(), f"{name} missing from {out}"
    leftovers = [p.name for p in out.rglob("*") if ".tmp-" in p.name]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    for png in ("confusion_matrix.png", "training_curves.png"):
        assert_is_plot(out / png)
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event files"
    result = json.loads((out / "metrics.json").read_text())
    missing = [key for key in METRIC_KEYS if key not in result]
    assert not missing, f"metrics.json lacks {missing}"
    assert result["epochs"] == epochs and len(result["history"]) == epochs
    for key in ("val_accuracy", "test_accuracy", "fused_val_accuracy", "fused_test_accuracy"):
        assert 0.0 <= result[key] <= 1.0
    assert result["train_samples_per_second"] > 0 and result["wall_seconds"] > 0
    config, labels, data_spec = frontend.load_features_json(out / "features.json")
    assert labels == result["labels"] and config == frontend.FrontendConfig()
    assert data_spec == result["data"] and data_spec["wanted_words"] == WORDS
    return result


def test_one_epoch_writes_the_output_dir_contract(one_epoch_run):
    out, config, returned = one_epoch_run
    result = _assert_contract(out, epochs=1)
    assert result == json.loads(json.dumps(returned))
    assert result["model"] == "repcnn" and result["hparams"] == config.model_params
    assert set(WORDS) <= set(result["labels"])
    data = kws_data.load(config.data_spec, config.frontend_config, config.cache_dir)
    assert result["labels"] == list(data.labels)
    # The confusion matrix in metrics.json is the test split's, as plotted.
    cm = np.array(result["test_confusion_matrix"])
    assert cm.shape == (len(result["labels"]),) * 2
    assert cm.sum() == data.num_examples("testing")
    assert kws_metrics.accuracy_from_confusion(cm) == pytest.approx(result["test_accuracy"])


def test_fused_model_is_plain_and_matches_the_multi_branch_model(one_epoch_run):
    out, config, _ = one_epoch_run
    result = json.loads((out / "metrics.json").read_text())
    assert result["fused_val_accuracy"] == result["val_accuracy"]
    assert result["fused_test_accuracy"] == result["test_accuracy"]
    multi_branch = keras.models.load_model(out / "train_model.keras", compile=False)
    fused = keras.models.load_model(out / "fused.keras", compile=False)
    rep_layers = [l.name for l in multi_branch.layers if type(l).__name__.startswith("Rep")]
    assert rep_layers, "repcnn should train multi-branch Rep layers"
    for layer in fused.layers:
        assert not type(layer).__name__.startswith("Rep"), layer.name
        assert not isinstance(layer, keras.layers.BatchNormalization), layer.name
    from tflm_kws import complexity
    assert {"params": result["params"], "macs": result["macs"]} == \
        complexity.count_params_and_macs(fused)
    data = kws_data.load(config.data_spec, config.frontend_config, config.cache_dir)
    x, _ = data.features("testing")
    inputs = frontend.features_to_model_input(x)
    reference = multi_branch.predict(inputs, verbose=0)
    assert np.max(np.abs(fused.predict(inputs, verbose=0) - reference)) <= \
        1e-5 * np.max(np.abs(reference))


def test_rerun_of_a_finished_run_is_a_no_op(one_epoch_run):
    out, config, _ = one_epoch_run
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert training.train(config) == json.loads((out / "metrics.json").read_text())
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@pytest.mark.parametrize("change", [{"model": "cnn"}, {"epochs": 2}, {"seed": 1}])
def test_resume_into_another_commands_run_is_refused(one_epoch_run, change):
    out, config, _ = one_epoch_run
    changed = dict(change)
    if "model" in changed:
        changed["model_params"] = training.model_hparams(changed["model"], {})
    with pytest.raises(training.UserInputError, match="different command") as error:
        training.train(_config(out, config.cache_dir, **changed))
    assert sorted(change)[0] in str(error.value) and "--noresume" in str(error.value)


def test_mixup_trains_on_soft_labels_and_reports_hard_label_accuracy(tmp_path, cache_dir):
    out = tmp_path / "mixup"
    config = train_cli.config_from_flags(_parse([
        f"--output_dir={out}", f"--cache_dir={cache_dir}", f"--data_dir={FIXTURE}",
        f"--wanted_words={','.join(WORDS)}", f"--data_params={json.dumps(DATA_PARAMS)}",
        "--batch_size=16", "--epochs=1", "--mixup_alpha=0.2"]))
    assert config.mixup_alpha == 0.2
    training.train(dataclasses.replace(config, verbose=0))
    result = _assert_contract(out, epochs=1)
    assert result["training"]["mixup_alpha"] == 0.2
    epoch = result["history"][0]
    assert np.isfinite(epoch["loss"]) and 0.0 <= epoch["accuracy"] <= 1.0
    assert 0.0 <= epoch["val_accuracy"] <= 1.0 and np.isfinite(epoch["val_loss"])
    run = json.loads((out / "checkpoints" / "run.json").read_text())
    assert run["mixup_alpha"] == 0.2
    with pytest.raises(training.UserInputError, match="mixup_alpha"):
        training.train(dataclasses.replace(config, mixup_alpha=0.4, verbose=0))


def test_soft_loss_takes_hard_and_soft_labels_and_smooths():
    logits = tf.constant([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    hard = tf.constant([[0], [2]])
    soft = tf.constant([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    loss = training.SoftCrossEntropy()
    np.testing.assert_allclose(
        loss(hard, logits),
        np.mean(keras.losses.sparse_categorical_crossentropy(hard, logits, from_logits=True)),
        rtol=1e-6)
    np.testing.assert_allclose(
        loss(soft, logits),
        np.mean(keras.losses.categorical_crossentropy(soft, logits, from_logits=True)), rtol=1e-6)
    # Label smoothing 0.3 over 3 classes: the target of class 0 becomes [0.8, 0.1, 0.1].
    smoothed = training.SoftCrossEntropy(label_smoothing=0.3)
    log_p = tf.nn.log_softmax(logits).numpy()
    targets = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(smoothed(hard, logits), np.mean(-(targets * log_p).sum(-1)),
                               rtol=1e-6)
    assert training.SoftCrossEntropy.from_config(smoothed.get_config()).label_smoothing == 0.3
    np.testing.assert_array_equal(training.hard_label_accuracy(hard, logits), [1.0, 0.0])
    # Soft labels count against their dominant class (0 and 2 here).
    np.testing.assert_array_equal(training.hard_label_accuracy(soft, logits), [1.0, 0.0])
    # Without mixup and smoothing the compiled loss and metric are Keras' own sparse ones.
    plain = dataclasses.replace(_config("/unused", "/unused"), mixup_alpha=0.0,
                                label_smoothing=0.0)
    loss, compiled_metrics = training.loss_and_metrics(plain)
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
    assert compiled_metrics == ["accuracy"]
    assert "mixup_alpha" not in plain.identity() and "label_smoothing" not in plain.identity()
    smoothing = dataclasses.replace(plain, label_smoothing=0.1)
    assert training.loss_and_metrics(smoothing)[0].label_smoothing == 0.1
    assert smoothing.identity()["label_smoothing"] == 0.1


def test_the_same_config_trains_the_same_model(one_epoch_run, tmp_path):
    """Seeded all through (SpecAugment's masks too, drawn in tf.data's parallel calls): a run
    repeated is the same run, so two configurations can be compared run against run."""
    _, config, first = one_epoch_run
    assert config.data_spec.time_masks and config.data_spec.freq_masks
    again = training.train(dataclasses.replace(config, output_dir=str(tmp_path / "again")))

    def learned(history):
        return [{k: v for k, v in epoch.items() if k != "train_seconds"} for epoch in history]
    assert learned(again["history"]) == learned(first["history"])
    assert again["test_accuracy"] == first["test_accuracy"]
    a, b = (keras.models.load_model(os.path.join(out, training.FUSED_MODEL), compile=False)
            for out in (config.output_dir, tmp_path / "again"))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_balanced_class_weights_give_every_class_the_same_total():
    labels = [0, 0, 0, 1, 2, 2]
    weights = training.class_weight_map(labels, 4, "balanced")
    assert weights == pytest.approx({0: 6 / 12, 1: 6 / 4, 2: 6 / 8, 3: 1.0})
    totals = {c: weights[c] * labels.count(c) for c in (0, 1, 2)}
    assert totals == pytest.approx({0: 1.5, 1: 1.5, 2: 1.5})  # N / classes each
    assert training.class_weight_map(labels, 4, "none") is None
    with pytest.raises(training.UserInputError, match="--class_weights must be one of"):
        training.config_from_options("/tmp/unused", class_weights="inverse")


def test_balanced_run_prints_its_weights_and_records_them(one_epoch_run, tmp_path, capsys):
    _, config, unweighted = one_epoch_run
    out = tmp_path / "balanced"
    result = training.train(_config(out, config.cache_dir, class_weights="balanced"))
    printed = capsys.readouterr().out
    assert "Class weights: " in printed
    weights_line = printed.split("Class weights: ")[1].splitlines()[0]
    assert [part.split()[0] for part in weights_line.split(", ")] == unweighted["labels"]
    assert result["training"]["class_weights"] == "balanced"
    assert unweighted["training"]["class_weights"] == "none"
    # A different run: the weighted run does not resume the unweighted one, nor the reverse.
    recorded = json.loads((out / "checkpoints" / "run.json").read_text())
    assert recorded["class_weights"] == "balanced"
    assert "class_weights" not in config.identity()


def test_frozen_layers_keep_the_transferred_weights(one_epoch_run, tmp_path, cache_dir):
    import tf_keras as keras
    source, _, _ = one_epoch_run
    out = tmp_path / "frozen"
    training.train(_config(out, cache_dir, init_from=str(source), freeze=("conv1", "conv2")))
    before = {layer.name: layer for layer in
              keras.models.load_model(source / training.TRAIN_MODEL, compile=False).layers}
    after = keras.models.load_model(out / training.TRAIN_MODEL, compile=False)
    for layer in after.layers:
        if not layer.weights:
            continue
        before[layer.name].trainable = layer.trainable  # saved frozen: the same weight order
        same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(),
                                                         before[layer.name].get_weights()))
        # Frozen: weights and BatchNorm statistics unchanged; the others trained on.
        assert same == (layer.name in ("conv1", "conv2")), layer.name
    keras.backend.clear_session()


@pytest.mark.parametrize("overrides, message", [
    (dict(freeze=("conv1",)), r"--freeze=conv1 needs --init_from"),
    (dict(freeze=("conv9",), init_from="x"), r"--freeze: 'repcnn' has no layer\(s\) with "
     r"weights \['conv9'\]"),
])
def test_bad_freeze_is_named(tmp_path, cache_dir, overrides, message):
    with pytest.raises(training.UserInputError, match=message):
        training.train(_config(tmp_path / "run", cache_dir, **overrides))


def _iterations(checkpoint_path):
    names = [name for name, _ in tf.train.list_variables(checkpoint_path)
             if name.startswith("optimizer/") and "iterations" in name]
    assert len(names) == 1, names
    return int(tf.train.load_variable(checkpoint_path, names[0]))


def test_sigkill_after_epoch_1_resumes_at_epoch_2(tmp_path, cache_dir):
    out, epochs = tmp_path / "run", 4
    command = _cli(out, cache_dir, f"--epochs={epochs}")
    state_path = out / "checkpoints" / "state.json"
    with open(tmp_path / "first.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 150
        while not state_path.exists():
            assert process.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "epoch 1 did not complete in time"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    committed = json.loads(state_path.read_text())
    killed_after = committed["epochs_completed"]
    assert 1 <= killed_after < epochs, f"the kill came after epoch {killed_after}"
    assert not (out / "metrics.json").exists()
    # What a kill in the middle of a save leaves behind; resuming cleans it up.
    (out / "checkpoints" / "best-0009.keras.tmp-killed.keras").write_bytes(b"partial")
    (out / "checkpoints" / "ckpt-9_temp").mkdir(exist_ok=True)

    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert f"Resuming after epoch {killed_after} of {epochs}" in resumed.stdout
    assert f"Epoch {killed_after + 1}/{epochs}" in resumed.stdout
    assert f"Epoch {killed_after}/{epochs}" not in resumed.stdout
    result = _assert_contract(out, epochs=epochs)
    assert not (out / "checkpoints" / "ckpt-9_temp").exists()
    assert result["history"][:killed_after] == committed["history"]
    assert result["fused_val_accuracy"] == result["val_accuracy"]
    # The optimizer (moments and step count, hence the LR schedule) was restored, not restarted.
    final = tf.train.latest_checkpoint(out / "checkpoints")
    assert final.endswith(f"ckpt-{epochs}")
    assert _iterations(final) == epochs * result["steps_per_epoch"]
    best = result["best_epoch"]
    assert result["history"][best - 1]["val_accuracy"] == max(h["val_accuracy"]
                                                              for h in result["history"])


def _parse(argv):
    flag_values = flags.FlagValues()
    train_cli.define_flags(flag_values)
    flag_values(["train", "--output_dir=/tmp/unused", *argv])
    return flag_values


@pytest.mark.parametrize("argv, flag", [
    (["--epochs=0"], "epochs"), (["--batch_size=-1"], "batch_size"),
    (["--learning_rate=0"], "learning_rate"), (["--weight_decay=-0.1"], "weight_decay"),
    (["--fuse_every=-1"], "fuse_every"), (["--warmup_fraction=0.9"], "warmup_fraction"),
    (["--lr_schedule=linear"], "lr_schedule"), (["--strategy=tpu"], "strategy"),
    (["--model_params=[1]"], "model_params"), (["--data_params={bad"], "data_params"),
    (["--mixup_alpha=-0.1"], "mixup_alpha"), (["--mixup_alpha=nan"], "mixup_alpha"),
    (["--class_weights=inverse"], "class_weights"),
])
def test_bad_flag_values_are_named(argv, flag):
    with pytest.raises(flags.IllegalFlagValueError, match=f"--{flag}"):
        _parse(argv)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(flags.IllegalFlagValueError) as error:
        _parse(["--model=resnet"])
    for name in ("repcnn", "cnn", "ds_cnn", "tiny_conv"):
        assert name in str(error.value)


@pytest.mark.parametrize("argv, message", [
    (['--model_params={"no_such_hparam": 1}'], r"--model_params: model 'repcnn' has no"),
    (['--model_params={"num_classes": 3}'], r"--model_params may not set \['num_classes'\]"),
    (['--data_params={"seed": 3}'], r"--data_params may not set \['seed'\]: use the flag"),
    (['--data_params={"no_such_field": 3}'], r"--data_params.*no_such_field"),
    (['--frontend_params={"num_channels": 0}'], r"--frontend_params.*num_channels"),
])
def test_bad_params_are_named(argv, message):
    with pytest.raises(training.UserInputError, match=message):
        train_cli.config_from_flags(_parse(argv))


def test_multi_worker_needs_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(training.UserInputError, match="TF_CONFIG"):
        training.make_strategy("multi_worker")


def test_cli_unknown_word_is_a_clear_error_and_helpfull_lists_the_flags(tmp_path, cache_dir):
    # The last --wanted_words wins.
    bad = subprocess.run(_cli(tmp_path / "run", cache_dir, "--epochs=1",
                              "--wanted_words=yes,zebra"),
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "zebra" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-3000:]
    helpfull = subprocess.run([sys.executable, "-m", "training.train", "--helpfull"], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
    for flag in ("data_dir", "wanted_words", "wake_word", "model", "model_params", "epochs",
                 "batch_size", "learning_rate", "lr_schedule", "weight_decay", "seed",
                 "output_dir", "resume", "fuse_every", "strategy", "cache_dir"):
        assert f"--{flag}" in helpfull.stdout, flag


def test_noresume_starts_over_in_another_commands_dir(one_epoch_run, tmp_path):
    source, config, _ = one_epoch_run
    out = tmp_path / "run"
    shutil.copytree(source, out)
    result = training.train(_config(out, config.cache_dir, model="cnn", resume=False,
                                        model_params=training.model_hparams("cnn", {})))
    assert result["model"] == "cnn"
    assert _assert_contract(out, epochs=1) == json.loads(json.dumps(result))
    assert json.loads((out / "checkpoints" / "run.json").read_text())["model"] == "cnn"
    fused = keras.models.load_model(out / "fused.keras", compile=False)
    assert result["params"] == fused.count_params()


def test_bad_data_dir_is_named_and_leaves_the_dir_resumable(tmp_path, cache_dir):
    out = tmp_path / "run"
    bad = _config(out, cache_dir, data_spec=kws_data.DataSpec(data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(training.UserInputError, match="nowhere"):
        training.train(bad)
    # Nothing recorded the failed command as this directory's run.
    assert not (out / "checkpoints" / "run.json").exists()
