"""tflm_kws.metrics: confusion matrix, accuracy and the plots training writes."""
import numpy as np
import pytest

import tflm_kws  # noqa: F401
from tflm_kws import metrics

from conftest import assert_is_plot


def test_confusion_matrix_counts_rows_true_columns_predicted():
    cm = metrics.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert metrics.accuracy_from_confusion(cm) == pytest.approx(4 / 6)
    assert metrics.accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2]) == pytest.approx(4 / 6)


def test_confusion_matrix_rejects_out_of_range_and_mismatch():
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        metrics.confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        metrics.accuracy([], [])


def test_plots_write_png(tmp_path):
    cm = metrics.confusion_matrix([0, 1, 2, 1], [0, 1, 1, 1], num_classes=3)
    metrics.plot_confusion_matrix(cm, ["_silence_", "_unknown_", "hey tiny"], tmp_path / "cm.png")
    metrics.plot_training_curves({"loss": [2.0, 1.0], "val_loss": [2.1, 1.2],
                                  "accuracy": [0.3, 0.6], "val_accuracy": [0.2, 0.5]},
                                 tmp_path / "curves.png")
    for name in ("cm.png", "curves.png"):
        assert_is_plot(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.png", "curves.png"]  # no temp left
    with pytest.raises(ValueError, match="labels"):
        metrics.plot_confusion_matrix(cm, ["a", "b"], tmp_path / "bad.png")
