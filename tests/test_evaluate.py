"""tflm_kws.evaluate: input quantization, runtimes, report text and the command line."""
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tflm_kws import evaluate
from tflm_kws import metrics


def test_quantize_input_follows_the_input_tensor():
    clips = np.array([[[-128, -1, 0, 1, 127]]], np.int8)
    float_detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    np.testing.assert_array_equal(evaluate.quantize_input(clips, float_detail)[..., 0],
                                  clips.astype(np.float32) / 128)
    # Half the resolution and an offset zero point: q = round(v / 2) + 5, clamped.
    detail = {"dtype": np.int8, "quantization": (1 / 64, 5)}
    np.testing.assert_array_equal(evaluate.quantize_input(clips, detail)[..., 0],
                                  [[[-59, 5, 5, 5, 69]]])


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
