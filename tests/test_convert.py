"""python -m conversion.convert: bad input, and the whole pipeline on a one-epoch model."""
import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tflm_kws import export


def _convert(*args):
    return subprocess.run([sys.executable, "-m", "conversion.convert", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_missing_model_dir_is_named(tmp_path):
    missing = tmp_path / "no_such_run"
    result = _convert(f"--model_dir={missing}")
    assert result.returncode != 0
    assert f"--model_dir is not a directory: {missing}" in result.stderr


def test_missing_fused_model_is_named(tmp_path):
    result = _convert(f"--model_dir={tmp_path}", "--qat_epochs=0")
    assert result.returncode != 0
    assert f"fused plain-graph model (fused.keras) not found: {tmp_path / 'fused.keras'}" \
        in result.stderr


# --- The whole pipeline on a one-epoch model trained on the Speech Commands fixture. ---

FIXTURE = REPO / "tests" / "fixtures" / "speech_commands_mini"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-epoch training output directory (model 'cnn', a wake-word model: yes, with no as
    unknown, and silence)."""
    from tflm_kws import data as kws_data  # pylint: disable=import-outside-toplevel
    from tflm_kws import training  # pylint: disable=import-outside-toplevel
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    config = training.TrainConfig(
        output_dir=str(out), model="cnn", model_params=training.model_hparams("cnn", {}),
        data_spec=kws_data.DataSpec(data_dir=str(FIXTURE), wanted_words=["yes"],
                                    augment_variants=1),
        epochs=1, batch_size=16, cache_dir=str(cache), verbose=0)
    training.train(config)
    return out


def _int8_accuracy(run_dir, tflite_bytes, split):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tflm_kws import data as kws_data, evaluate, frontend  # pylint: disable=import-outside-toplevel
    config, _, spec = frontend.load_features_json(run_dir / "features.json")
    cache_dir = json.loads((run_dir / "metrics.json").read_text())["cache_dir"]
    x, y = kws_data.load(kws_data.DataSpec.from_dict(spec), config, cache_dir).features(split)
    return float(np.mean(np.argmax(evaluate.run_tflite(tflite_bytes, x, "tflite_ref"), 1) == y))


def test_convert_end_to_end_with_qat(trained_run, tmp_path):
    out = tmp_path / "converted"
    sketch = tmp_path / "sketch"
    sketch.mkdir()
    positives, negatives = tmp_path / "positives", tmp_path / "negatives"
    positives.mkdir()
    negatives.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "tflm_testdata" / "yes_1000ms.wav", positives)
    shutil.copy(REPO / "tests" / "fixtures" / "tflm_testdata" / "no_1000ms.wav", negatives)
    result = _convert(f"--model_dir={trained_run}", f"--output_dir={out}", "--qat_epochs=1",
                      f"--arduino_dir={sketch}", "--batch_size=16",
                      f"--wake_word_positives={positives}", f"--wake_word_negatives={negatives}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    tflite_bytes = (out / "model_int8.tflite").read_bytes()

    assert report["tflm_identical_outputs"] == report["test_clips"] > 0
    assert report["flatbuffer_bytes"] == len(tflite_bytes)
    assert report["input_quantization"] == {"dtype": "int8", "scale": 1 / 128, "zero_point": 0}
    assert set(report["ops"]) <= set(export.TFLM_OPS) and "CONV_2D" in report["ops"]
    assert report["params"] > 0 and report["macs"] > report["params"]
    # The board's arena covers what TFLM measured plus the CMSIS-NN scratch of this model.
    assert report["cmsis_nn_scratch_bytes"] == export.cmsis_nn_scratch_bytes(tflite_bytes) > 0
    assert report["arena_used_bytes"] == export.tflm_arena_used_bytes(tflite_bytes)
    assert report["tensor_arena_size"] >= (report["arena_used_bytes"]
                                           + report["cmsis_nn_scratch_bytes"] + 1024)
    for key in ("float_accuracy", "int8_accuracy", "tflm_accuracy", "qat_keras_accuracy",
                "ptq_int8_accuracy", "tflite_default_kernels_accuracy"):
        assert 0.0 <= report[key] <= 1.0, key
    # The reported accuracy is the shipped flatbuffer's, recomputed here on the test split.
    assert report["int8_accuracy"] == pytest.approx(_int8_accuracy(trained_run, tflite_bytes,
                                                                   "testing"))
    assert report["tflm_accuracy"] == report["int8_accuracy"]  # identical outputs
    # The shipped flatbuffer is the QAT or post-training one, whichever is better on validation.
    better = ("qat" if report["qat_int8_val_accuracy"] >= report["ptq_int8_val_accuracy"]
              else "ptq")
    assert report["quantization"] == better
    shipped_val = report[f"{better}_int8_val_accuracy"]
    assert _int8_accuracy(trained_run, tflite_bytes, "validation") == pytest.approx(shipped_val)
    assert report["int8_minus_float"] == pytest.approx(report["int8_accuracy"]
                                                       - report["float_accuracy"])
    assert report["int8_minus_qat_keras"] == pytest.approx(report["int8_accuracy"]
                                                           - report["qat_keras_accuracy"])
    # The summary ends with the artifact paths.
    assert result.stdout.strip().splitlines()[-1] == str(out / "report.md")
    for name in ("model_data.h", "model_data.cc"):
        assert (out / name).read_text() == (sketch / name).read_text()
    header = (out / "model_data.h").read_text()
    assert f"constexpr int kTensorArenaSize = {report['tensor_arena_size']};" in header
    assert f"constexpr int kModelOpCount = {len(report['ops'])};" in header
    assert "| int8 accuracy, TFLite Micro |" in (out / "report.md").read_text()
    # cnn with 'same' padding has no streaming form: the report says why, no file is written.
    assert not report["streaming"]["streamable"] and "SAME" in report["streaming"]["reason"]
    assert not (out / "model_int8_stream.tflite").exists()
    assert "constexpr int kModelStreamFrames = 0;" in header
    # Real recordings given: the wake-word report, and its threshold (if any reaches the target
    # rate) is the sketch's.
    wake = report["wake_word"]
    assert wake["wake_word"] == "yes" and wake["positives"] == 1
    chosen = wake["threshold_for_target"]
    assert f"constexpr int kDetectionThreshold = {chosen['threshold'] if chosen else 200};" in header
    assert "wake word 'yes' on real recordings" in result.stdout


def test_wake_word_recordings_need_a_wake_word_model(tmp_path):
    proc = _convert(f"--model_dir={tmp_path}", f"--wake_word_positives={tmp_path}")
    assert proc.returncode != 0 and "go together" in proc.stderr


def test_convert_writes_the_streaming_model_for_the_sketch(tmp_path_factory, tmp_path):
    """A model valid in time: conversion also writes model_int8_stream.tflite, checks it against
    the whole-window model on every test clip, and model_data.cc holds it (the sketch runs it)."""
    from test_arduino_sketch import model_bytes  # pylint: disable=import-outside-toplevel
    # pylint: disable-next=import-outside-toplevel
    from tflm_kws import data as kws_data, streaming, training
    run = tmp_path_factory.mktemp("run_valid")
    config = training.TrainConfig(
        output_dir=str(run), model="cnn",
        model_params=training.model_hparams("cnn", {"padding": "valid", "channels": 8}),
        data_spec=kws_data.DataSpec(data_dir=str(FIXTURE), wanted_words=["yes"],
                                    augment_variants=1),
        epochs=1, batch_size=16, cache_dir=str(tmp_path_factory.mktemp("cache")), verbose=0)
    training.train(config)
    out = tmp_path / "converted"
    result = _convert(f"--model_dir={run}", f"--output_dir={out}", "--qat_epochs=0")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    stream = report["streaming"]
    stream_bytes = (out / "model_int8_stream.tflite").read_bytes()
    assert stream["streamable"] and stream["identical_outputs"] == stream["clips"] > 0
    assert stream["accuracy"] == report["tflm_accuracy"]  # identical outputs, same predictions
    assert streaming.layout(stream_bytes) == (2, stream["state_bytes"])
    header = (out / "model_data.h").read_text()
    assert "constexpr int kModelStreamFrames = 2;" in header
    assert f"constexpr int kTensorArenaSize = {stream['tensor_arena_size']};" in header
    assert f"constexpr int kModelOpCount = {len(stream['ops'])};" in header
    assert model_bytes(out) == stream_bytes  # model_data.cc holds the streaming flatbuffer
    device = stream["continuous_frontend"]
    assert device["clips"] > 0
    for key in ("per_clip_features", "after_silence", "after_previous_clip"):
        assert 0.0 <= device[key] <= 1.0
    assert "| streaming int8 accuracy" in (out / "report.md").read_text()
