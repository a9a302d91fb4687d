"""tflm_kws.evaluate: input quantization, runtimes, report text and the command line."""
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, assert_is_plot
from tflm_kws import evaluate
from tflm_kws import metrics


def test_quantize_input_follows_the_input_tensor():
    clips = np.array([[[-128, -1, 0, 1, 127]]], np.int8)
    float_detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    np.testing.assert_array_equal(evaluate.quantize_input(clips, float_detail)[..., 0],
                                  clips.astype(np.float32) / 128)
    # Half the resolution and an offset zero point: q = round(v / 2) + 5, halves away from zero
    # (as the sketch's lround), clamped.
    detail = {"dtype": np.int8, "quantization": (1 / 64, 5)}
    np.testing.assert_array_equal(evaluate.quantize_input(clips, detail)[..., 0],
                                  [[[-59, 4, 5, 6, 69]]])


def test_format_report_lists_every_class():
    labels = ["yes", "no", "_silence_"]
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 1, 0])
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=3)
    text = evaluate.format_report(metrics.accuracy(y_true, y_pred), 5, cm, labels)
    lines = text.splitlines()
    assert lines[0] == "accuracy: 0.6000 (5 clips)"
    assert any(line.strip() == "yes: 0.5000 (2 clips)" for line in lines)
    assert any(line.strip() == "no: 0.6667 (3 clips)" for line in lines)
    assert any(line.strip() == "_silence_: n/a (0 clips)" for line in lines)


def test_unknown_runtime_is_rejected():
    with pytest.raises(ValueError, match="unknown runtime 'cmsis'"):
        evaluate.make_runner(b"", "cmsis")


def test_cli_names_a_missing_model(tmp_path):
    missing = tmp_path / "nope.tflite"
    result = subprocess.run(
        [sys.executable, "-m", "tflm_kws.evaluate", f"--tflite={missing}",
         f"--data_dir={tmp_path}"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert f"no such file: {missing}" in result.stderr


FIXTURE = REPO / "tests" / "fixtures" / "speech_commands_mini"


def test_cli_on_the_fixture_matches_the_library(tmp_path):
    """An int8 model of 4 classes (features.json beside it) evaluated on the fixture's test split."""
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from tflm_kws import data as kws_data  # pylint: disable=import-outside-toplevel
    from tflm_kws import export, frontend  # pylint: disable=import-outside-toplevel

    spec = kws_data.DataSpec(data_dir=str(FIXTURE), wanted_words=["yes", "no"], augment_variants=0)
    config = frontend.FrontendConfig()
    dataset = kws_data.load(spec, config, str(tmp_path / "cache"))
    x_test, y_test = dataset.features("testing")
    x_train, _ = dataset.features("training")

    inputs = keras.Input((49, 40, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(dataset.labels))(x))
    tflite_path = tmp_path / "model" / "m.tflite"
    tflite_path.parent.mkdir()
    tflite_bytes = export.convert_int8(model, x_train)
    tflite_path.write_bytes(tflite_bytes)
    frontend.save_features_json(tflite_path.parent / "features.json", config, dataset.labels,
                                spec.to_dict())
    png = tmp_path / "cm.png"
    result = subprocess.run(
        [sys.executable, "-m", "tflm_kws.evaluate", f"--tflite={tflite_path}",
         f"--data_dir={FIXTURE}", "--runtime=tflm", f"--confusion_png={png}",
         f"--cache_dir={tmp_path / 'cache'}"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = np.argmax(evaluate.run_tflite(tflite_bytes, x_test, "tflm"), axis=1)
    expected = f"accuracy: {metrics.accuracy(y_test, predictions):.4f} ({len(y_test)} clips)"
    assert expected in result.stdout.splitlines()
    for label in dataset.labels:
        assert any(line.strip().startswith(f"{label}:") for line in result.stdout.splitlines())
    assert_is_plot(png)
