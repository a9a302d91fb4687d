"""Classification metrics and their plots, shared by training, conversion and evaluation.

Plots use matplotlib's object API (`matplotlib.figure.Figure`, Agg canvas) rather than pyplot, so no
global backend state is touched and nothing needs a display.
"""
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tflm_kws import io_utils


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Counts per (true label, predicted label): rows are true labels, columns predictions.

    Args:
      y_true: integer labels, shape [N].
      y_pred: integer predictions, shape [N].
      num_classes: size of the matrix; defaults to 1 + the largest label seen.
    Returns:
      np.int64 array [num_classes, num_classes].
    """
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside [0, {num_classes}): "
                             f"min {values.min()}, max {values.max()}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def accuracy(y_true, y_pred):
    """Fraction of predictions equal to the label (float in [0, 1])."""
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(y_true == y_pred))


def accuracy_from_confusion(cm):
    """Accuracy implied by a confusion matrix (trace / total)."""
    cm = np.asarray(cm)
    total = cm.sum()
    if total == 0:
        raise ValueError("accuracy of an empty confusion matrix is undefined")
    return float(np.trace(cm) / total)


def predict_classes(model, inputs, batch_size=256):
    """Argmax class of a Keras classifier (logits or probabilities) on `inputs`: np.int32 [N]."""
    outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    return np.argmax(outputs, axis=-1).astype(np.int32)


def plot_confusion_matrix(cm, labels, path, title="Confusion matrix"):
    """Writes a confusion-matrix heat map (rows true, columns predicted) to `path` atomically.

    Cells show counts; the colour is the row-normalised rate so that rare classes stay readable.
    """
    cm = np.asarray(cm)
    labels = list(labels)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match "
                         f"{len(labels)} labels")
    n = len(labels)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * n + 2.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true label")
    ax.set_xticks(range(n), labels=labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = accuracy_from_confusion(cm) if cm.sum() else float("nan")
    ax.set_title(f"{title} (accuracy {acc:.2%}, n={int(cm.sum())})")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    io_utils.atomic_savefig(fig, path, dpi=100)


def plot_training_curves(history, path):
    """Writes loss and accuracy per epoch (training and validation) to `path` atomically.

    Args:
      history: dict metric name -> list of per-epoch values, as in keras `History.history`
        (keys "loss", "accuracy", "val_loss", "val_accuracy"; any missing one is left out).
      path: output image path.
    """
    fig = Figure(figsize=(10, 4))
    for index, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, index + 1)
        for key, style in ((metric, "-"), ("val_" + metric, "--")):
            values = history.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    io_utils.atomic_savefig(fig, path, dpi=100)
