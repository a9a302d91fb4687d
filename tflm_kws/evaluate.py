"""Evaluates a .tflite keyword-spotting model (int8 or float) on a data directory.

  python -m tflm_kws.evaluate --tflite=runs/demo/model_int8.tflite --data_dir=../shared/data/... \
      [--runtime=tflm|tflite|tflite_ref] [--split=test|validation|all] [--confusion_png=PATH]

The frontend parameters and labels come from features.json next to the .tflite (or
--features_json); the clips go through the same frontend as at training time.

Runtimes: `tflm` is TensorFlow Lite Micro (the tflite_micro Python runtime with its reference
kernels; the board runs CMSIS-NN kernels), `tflite_ref` is tf.lite.Interpreter with the reference
kernels (identical int8 results to TFLM), `tflite` is tf.lite.Interpreter's default
optimized kernels (int8 results may differ from TFLM by rounding).
"""
import os
import sys

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from tflm_kws import frontend
from tflm_kws import metrics

RUNTIMES = ("tflm", "tflite_ref", "tflite")
SPLITS = {"test": ("testing",), "validation": ("validation",), "all": ("training", "validation",
                                                                      "testing")}


def quantize_input(features_int8, input_detail):
    """Model input tensor values for int8 features [N, frames, channels] (any input dtype)."""
    x = frontend.features_to_model_input(np.asarray(features_int8))
    dtype = np.dtype(input_detail["dtype"])
    if dtype == np.float32:
        return x
    scale, zero_point = _scale_and_zero_point(input_detail)
    info = np.iinfo(dtype)
    # Round half away from zero, as the device (model_scores.cpp) and TFLite's own quantize do.
    scaled = x.astype(np.float64) / scale
    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_output(outputs, output_detail):
    """Float logits from raw output values."""
    if np.dtype(output_detail["dtype"]) == np.float32:
        return np.asarray(outputs, np.float32)
    scale, zero_point = _scale_and_zero_point(output_detail)
    return (np.asarray(outputs, np.float32) - zero_point) * scale


def device_scores(raw_outputs, output_detail, output_is_probability):
    """uint8 [N, classes] recognizer scores the sketch computes from raw int8 outputs [N, classes]
    (arduino/tflm_kws/model_scores.cpp): probability * 256, rounded half away from zero, clamped
    to 0..255; probabilities are the dequantized output when the model ends in SOFTMAX, else a
    float32 softmax of the dequantized logits shifted by the largest raw value."""
    raw = np.asarray(raw_outputs)
    if raw.dtype != np.int8 or raw.ndim != 2:
        raise ValueError(f"device_scores: need int8 [N, classes], got {raw.dtype} {raw.shape}")
    scale, zero_point = _scale_and_zero_point(output_detail)
    scale = np.float32(scale)
    if output_is_probability:
        probabilities = (raw.astype(np.int32) - zero_point).astype(np.float32) * scale
    else:
        shifted = (raw.astype(np.int32) - raw.max(axis=1, keepdims=True)).astype(np.float32)
        exp = np.exp(shifted * scale, dtype=np.float32)
        probabilities = exp / exp.sum(axis=1, keepdims=True, dtype=np.float32)
    scaled = probabilities.astype(np.float32) * np.float32(256.0)
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))
    return np.clip(rounded, 0, 255).astype(np.uint8)


def ends_in_softmax(tflite_bytes):
    """Whether the model's last op is SOFTMAX (its output is then a probability)."""
    from tflm_kws import export  # pylint: disable=import-outside-toplevel
    ops, _ = export.ops_details(tflite_bytes)
    return bool(ops) and ops[-1]["op_name"] == "SOFTMAX"


def _scale_and_zero_point(detail):
    q = detail.get("quantization_parameters")
    if q is not None and len(q["scales"]):
        return float(q["scales"][0]), int(q["zero_points"][0])
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


class TfliteRunner:
    """Batch-1 inference with tf.lite.Interpreter (reference or default kernels)."""

    def __init__(self, tflite_bytes, reference_kernels=True):
        from tflm_kws import export  # pylint: disable=import-outside-toplevel
        resolver = (tf.lite.experimental.OpResolverType.BUILTIN_REF if reference_kernels
                    else tf.lite.experimental.OpResolverType.AUTO)
        # The default kernels announce their XNNPACK delegate on stderr: shown only on failure.
        self._interpreter = export.stderr_shown_on_failure(lambda: tf.lite.Interpreter(
            model_content=bytes(tflite_bytes), experimental_op_resolver_type=resolver))
        export.stderr_shown_on_failure(self._interpreter.allocate_tensors)
        (self.input_detail,) = self._interpreter.get_input_details()
        (self.output_detail,) = self._interpreter.get_output_details()

    def run(self, x):
        self._interpreter.set_tensor(self.input_detail["index"], x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self.output_detail["index"]).copy()


class TflmRunner:
    """Batch-1 inference with TensorFlow Lite Micro (tflite_micro Python runtime)."""

    def __init__(self, tflite_bytes, arena_size=None):
        from tflm_kws import export  # pylint: disable=import-outside-toplevel
        self.interpreter = export.tflm_interpreter(tflite_bytes, arena_size)
        self.input_detail = self.interpreter.get_input_details(0)
        self.output_detail = self.interpreter.get_output_details(0)

    def run(self, x):
        # TFLM reuses the input buffer during Invoke: the input is written before every call.
        self.interpreter.set_input(x, 0)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_output(0), copy=True)


def make_runner(tflite_bytes, runtime):
    if runtime == "tflm":
        return TflmRunner(tflite_bytes)
    if runtime in ("tflite_ref", "tflite"):
        return TfliteRunner(tflite_bytes, reference_kernels=runtime == "tflite_ref")
    raise ValueError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}")


def run_tflite(tflite_bytes, features_int8, runtime):
    """Raw outputs [N, num_classes] (model output dtype) for int8 features [N, frames, channels]."""
    if len(features_int8) == 0:
        raise ValueError("no features to evaluate")
    runner = make_runner(tflite_bytes, runtime)
    inputs = quantize_input(features_int8, runner.input_detail)
    shape = tuple(runner.input_detail["shape"])
    outputs = [runner.run(x.reshape(shape)).reshape(-1) for x in inputs]
    return np.stack(outputs)


def per_class_accuracy(cm, labels):
    """{label: accuracy or None when the class has no clip}."""
    totals = cm.sum(axis=1)
    return {label: (float(cm[i, i] / totals[i]) if totals[i] else None)
            for i, label in enumerate(labels)}


def format_report(accuracy, count, cm, labels):
    lines = [f"accuracy: {accuracy:.4f} ({count} clips)", "per-class accuracy:"]
    for label, acc in per_class_accuracy(cm, labels).items():
        total = int(cm[labels.index(label)].sum())
        lines.append(f"  {label:>12s}: " + (f"{acc:.4f} ({total} clips)" if acc is not None
                                              else "n/a (0 clips)"))
    width = max(6, max(len(label) for label in labels))
    lines.append("confusion matrix (rows: true, columns: predicted):")
    lines.append(" " * (width + 1) + " ".join(f"{label[:width]:>{width}s}" for label in labels))
    for i, label in enumerate(labels):
        lines.append(f"{label[:width]:>{width}s} " + " ".join(f"{int(v):>{width}d}" for v in cm[i]))
    return "\n".join(lines)


def load_split_features(features_json, data_dir, splits, cache_dir):
    """(int8 features, labels int32, label names) of `splits` of `data_dir`, made as at training."""
    from tflm_kws import data as kws_data  # pylint: disable=import-outside-toplevel
    config, labels, data_spec = frontend.load_features_json(features_json)
    spec = kws_data.DataSpec.from_dict(dict(data_spec or {}, data_dir=data_dir))
    dataset = kws_data.load(spec, config, cache_dir)
    if list(dataset.labels) != list(labels):
        raise ValueError(f"labels of {data_dir} {dataset.labels} differ from {features_json} "
                         f"{labels}")
    xs, ys = [], []
    for split in splits:
        if dataset.num_examples(split):
            x, y = dataset.features(split)
            xs.append(x)
            ys.append(y)
    if not xs:
        raise ValueError(f"{data_dir}: no clips in split(s) {', '.join(splits)}")
    return np.concatenate(xs), np.concatenate(ys).astype(np.int32), list(labels)


FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined on demand, so importing this module defines none)."""
    flags.DEFINE_string("tflite", None, "Path of the .tflite model (int8 or float).")
    flags.DEFINE_string("data_dir", None,
                        "Data directory (Speech Commands layout or a canonical test set).")
    flags.DEFINE_enum("runtime", "tflm", list(RUNTIMES),
                      "Interpreter: TFLM, TFLite reference kernels or TFLite default kernels.")
    flags.DEFINE_enum("split", "test", list(SPLITS), "Which split of data_dir to evaluate.")
    flags.DEFINE_string("features_json", None, "features.json (default: next to --tflite).")
    flags.DEFINE_string("confusion_png", None, "Confusion matrix PNG (default: <tflite stem>_"
                        "<split>_confusion.png next to --tflite).")
    flags.DEFINE_string("cache_dir", None,
                        "Feature cache directory (default: feature_cache/ next to --tflite).")


def main(argv):
    del argv
    if not FLAGS.tflite:
        raise app.UsageError("--tflite is required")
    if not os.path.isfile(FLAGS.tflite):
        raise app.UsageError(f"--tflite: no such file: {FLAGS.tflite}")
    if not FLAGS.data_dir:
        raise app.UsageError("--data_dir is required")
    if not os.path.isdir(FLAGS.data_dir):
        raise app.UsageError(f"--data_dir: no such directory: {FLAGS.data_dir}")
    model_dir = os.path.dirname(os.path.abspath(FLAGS.tflite))
    features_json = FLAGS.features_json or os.path.join(model_dir, "features.json")
    if not os.path.isfile(features_json):
        raise app.UsageError(f"features.json not found: {features_json} (pass --features_json)")
    cache_dir = FLAGS.cache_dir or os.path.join(model_dir, "feature_cache")
    with open(FLAGS.tflite, "rb") as f:
        tflite_bytes = f.read()
    x, y, labels = load_split_features(features_json, FLAGS.data_dir, SPLITS[FLAGS.split],
                                       cache_dir)
    outputs = run_tflite(tflite_bytes, x, FLAGS.runtime)
    if outputs.shape[1] != len(labels):
        raise ValueError(f"{FLAGS.tflite} outputs {outputs.shape[1]} classes, {features_json} "
                         f"lists {len(labels)} labels")
    predictions = np.argmax(outputs, axis=1)
    cm = metrics.confusion_matrix(y, predictions, num_classes=len(labels))
    print(f"{FLAGS.tflite} on {FLAGS.data_dir} [{FLAGS.split}], runtime {FLAGS.runtime}")
    print(format_report(metrics.accuracy(y, predictions), len(y), cm, labels))
    stem = os.path.splitext(os.path.basename(FLAGS.tflite))[0]
    png = FLAGS.confusion_png or os.path.join(model_dir, f"{stem}_{FLAGS.split}_confusion.png")
    metrics.plot_confusion_matrix(cm, labels, png,
                                  title=f"{stem} ({FLAGS.runtime}, {FLAGS.split})")
    print(f"confusion matrix: {png}")
    sys.stdout.flush()


if __name__ == "__main__":
    define_flags()
    app.run(main)
