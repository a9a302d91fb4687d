"""Quantization-aware training, int8 conversion and TFLite Micro verification of a trained model.

  from tflm_kws import conversion
  report, paths = conversion.convert("runs/demo", qat_epochs=3, arduino_dir="arduino/tflm_kws")

Reads the training output directory (fused.keras, features.json, metrics.json), fine-tunes the
fused plain graph with fake quantization (tfmot; qat_epochs=0 converts post-training only),
converts it to a full-int8 flatbuffer for TFLM, runs the test split through the float model, the
int8 model in tf.lite.Interpreter (reference and default kernels) and in TFLM, and writes
model_int8.tflite, model_data.cc/.h, report.json and report.md. `python -m conversion.convert` is
its command line. See docs/conversion.md.
"""
import json
import os
import time

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tf_keras as keras
from absl import logging

from tflm_kws import carray
from tflm_kws import complexity
from tflm_kws import evaluate
from tflm_kws import evaluate_wake_word
from tflm_kws import export
from tflm_kws import frontend
from tflm_kws import io_utils
from tflm_kws import metrics
from tflm_kws import quantize
from tflm_kws import streaming
from tflm_kws.data.spec import SILENCE_LABEL, UNKNOWN_LABEL

TFLITE_NAME = "model_int8.tflite"
STREAM_TFLITE_NAME = "model_int8_stream.tflite"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def _require_file(path, what):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def load_training_output(model_dir):
    """(fused float model, FrontendConfig, labels, data spec dict, metrics dict) of `model_dir`."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"--model_dir is not a directory: {model_dir}")
    fused_path = _require_file(os.path.join(model_dir, "fused.keras"),
                               "fused plain-graph model (fused.keras)")
    features_path = _require_file(os.path.join(model_dir, "features.json"), "features.json")
    config, labels, data_spec = frontend.load_features_json(features_path)
    metrics_path = os.path.join(model_dir, "metrics.json")
    training_metrics = {}
    if os.path.isfile(metrics_path):
        with open(metrics_path) as f:
            training_metrics = json.load(f)
    try:
        model = keras.models.load_model(fused_path, compile=False)
    except Exception as err:  # pylint: disable=broad-except
        raise ValueError(f"cannot load {fused_path}: {err}") from err
    outputs = model.output_shape[-1]
    if outputs != len(labels):
        raise ValueError(f"{fused_path} has {outputs} outputs but {features_path} lists "
                         f"{len(labels)} labels")
    return model, config, labels, data_spec, training_metrics


def load_data(data_spec, config, data_dir, cache_dir):
    from tflm_kws import data as kws_data  # pylint: disable=import-outside-toplevel
    spec = dict(data_spec or {})
    if data_dir is not None:
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"--data_dir is not a directory: {data_dir}")
        spec["data_dir"] = data_dir
    return kws_data.load(kws_data.DataSpec.from_dict(spec), config, cache_dir)


def _accuracy(outputs, labels):
    return metrics.accuracy(labels, np.argmax(outputs, axis=1))


def _keras_accuracy(model, x, y):
    """Accuracy of a float or fake-quant Keras model on int8 features `x`."""
    outputs = model.predict(frontend.features_to_model_input(x), batch_size=256, verbose=0)
    return _accuracy(outputs, y)


def _int8_accuracy(tflite_bytes, x, y):
    """Accuracy of an int8 flatbuffer in TFLite with reference kernels (TFLM's arithmetic)."""
    return _accuracy(evaluate.run_tflite(tflite_bytes, x, "tflite_ref"), y)


# Clean training clips that set the QAT activation ranges before fine-tuning.
CALIBRATION_CLIPS = 1000


def _calibration_sample(x, count):
    """Up to `count` clips spread evenly over `x` (deterministic)."""
    index = np.linspace(0, len(x) - 1, num=min(count, len(x))).round().astype(int)
    return x[np.unique(index)]


def convert_and_verify(fused_model, dataset, labels, qat_epochs, learning_rate=1e-4,
                       batch_size=100, representative_samples=200, log=print):
    """QAT (when qat_epochs > 0), conversion, checks, verification; returns (tflite bytes,
    streaming tflite bytes or None when the model does not stream, report).

    Raises export.DeployError when the flatbuffer holds an op TFLM cannot run (named with its
    layer).
    """
    x_train, _ = dataset.features("training")
    x_test, y_test = dataset.features("testing")
    report = {"labels": list(labels), "qat_epochs": int(qat_epochs), "test_clips": int(len(y_test))}

    report["float_accuracy"] = _keras_accuracy(fused_model, x_test, y_test)
    log(f"float fused model: test accuracy {report['float_accuracy']:.4f} ({len(y_test)} clips)")

    ptq_bytes = export.convert_int8(fused_model, x_train, representative_samples)
    export.check_deployable(ptq_bytes, fused_model)
    if qat_epochs > 0:
        start = time.time()
        qat_model = quantize.quantization_aware_train(
            fused_model, dataset.dataset("training", batch_size, training=True),
            dataset.dataset("validation", batch_size, training=False), epochs=qat_epochs,
            learning_rate=learning_rate,
            calibration_inputs=frontend.features_to_model_input(
                _calibration_sample(x_train, CALIBRATION_CLIPS)))
        report["qat_seconds"] = round(time.time() - start, 1)
        report["qat_keras_accuracy"] = _keras_accuracy(qat_model, x_test, y_test)
        log(f"QAT model (fake quant, Keras): test accuracy {report['qat_keras_accuracy']:.4f}")
        qat_bytes = export.convert_int8(qat_model, x_train, representative_samples)
        export.check_deployable(qat_bytes, qat_model)
        report["ptq_int8_accuracy"] = _int8_accuracy(ptq_bytes, x_test, y_test)
        # QAT fine-tunes as well as rounds, which can move accuracy either way on a small set; the
        # flatbuffer that ships is the one better on *validation* (the test split only reports).
        x_val, y_val = dataset.features("validation")
        report["ptq_int8_val_accuracy"] = _int8_accuracy(ptq_bytes, x_val, y_val)
        report["qat_int8_val_accuracy"] = _int8_accuracy(qat_bytes, x_val, y_val)
        use_qat = report["qat_int8_val_accuracy"] >= report["ptq_int8_val_accuracy"]
        report["quantization"] = "qat" if use_qat else "ptq"
        tflite_bytes = qat_bytes if use_qat else ptq_bytes
        log(f"int8 validation accuracy: QAT {report['qat_int8_val_accuracy']:.4f}, post-training "
            f"{report['ptq_int8_val_accuracy']:.4f} -> shipping {report['quantization'].upper()}")
    else:
        report["quantization"] = "ptq"
        tflite_bytes = ptq_bytes
    export.check_input_quantization(tflite_bytes, frontend.FEATURE_SCALE)

    ref = evaluate.run_tflite(tflite_bytes, x_test, "tflite_ref")
    default = evaluate.run_tflite(tflite_bytes, x_test, "tflite")
    tflm = evaluate.run_tflite(tflite_bytes, x_test, "tflm")
    report["int8_accuracy"] = _accuracy(ref, y_test)
    report["tflite_default_kernels_accuracy"] = _accuracy(default, y_test)
    report["tflm_accuracy"] = _accuracy(tflm, y_test)
    report["int8_minus_float"] = report["int8_accuracy"] - report["float_accuracy"]
    if report["quantization"] == "qat":
        # QAT also fine-tunes: int8 - float mixes that in; this is the rounding loss alone.
        report["int8_minus_qat_keras"] = report["int8_accuracy"] - report["qat_keras_accuracy"]
    report["tflm_identical_outputs"] = int(np.sum(np.all(tflm == ref, axis=1)))
    report["tflite_default_identical_outputs"] = int(np.sum(np.all(default == ref, axis=1)))
    cm = metrics.confusion_matrix(y_test, np.argmax(tflm, axis=1), num_classes=len(labels))
    report["tflm_confusion_matrix"] = cm.tolist()

    stream_bytes, report["streaming"] = streaming.verify(tflite_bytes, x_test, y_test, tflm)
    if stream_bytes is not None:
        stream = report["streaming"]
        log(f"streaming model ({stream['frames_per_call']} frames a call): outputs identical to "
            f"the whole-window model on {stream['identical_outputs']} / {stream['clips']} test "
            f"clips")
        if stream["identical_outputs"] != stream["clips"]:
            raise RuntimeError(f"the streaming model differs from the whole-window model on "
                               f"{stream['clips'] - stream['identical_outputs']} test clips")
        stream["continuous_frontend"] = _continuous_frontend(stream_bytes, dataset, tflm, y_test)
        log(f"streaming, frontend and state carried over (device mode): "
            f"{stream['continuous_frontend']}")
    else:
        log(f"no streaming form: {report['streaming']['reason']}")

    arena_used = export.tflm_arena_used_bytes(tflite_bytes)
    scratch = export.cmsis_nn_scratch_bytes(tflite_bytes)
    ops, tensors = export.ops_details(tflite_bytes)
    report.update({
        "arena_used_bytes": arena_used,
        "cmsis_nn_scratch_bytes": scratch,
        "tensor_arena_size": export.recommended_arena_bytes(arena_used, scratch),
        "flatbuffer_bytes": len(tflite_bytes),
        "ops": export.op_names(tflite_bytes),
        "op_sequence": [op["op_name"] for op in ops],
        "input_quantization": _quantization(tensors, ops[0]["inputs"][0]),
        "output_quantization": _quantization(tensors, ops[-1]["outputs"][0]),
    })
    return tflite_bytes, stream_bytes, report


def _continuous_frontend(stream_bytes, dataset, window_outputs, y_test):
    """Test accuracy of the streaming model with the device's continuous frontend (see
    `streaming.continuous_frontend_accuracy`) on the test clips that are audio files, beside the
    per-clip-features accuracy on the same clips."""
    from tflm_kws import audio  # pylint: disable=import-outside-toplevel
    config = dataset.config
    keep, clips = [], []
    for i, origin in enumerate(dataset.files("testing")):
        if os.path.isfile(origin):
            clips.append(audio.fit_to_length(audio.load_audio(origin, config.sample_rate),
                                             config.clip_samples))
            keep.append(i)
    if not keep:
        return {"clips": 0}
    labels = np.asarray(y_test)[keep]
    result = {"clips": len(keep),
              "per_clip_features": float(np.mean(np.argmax(window_outputs[keep], 1) == labels))}
    for lead in ("silence", "previous_clip"):
        result[f"after_{lead}"] = streaming.continuous_frontend_accuracy(
            stream_bytes, clips, labels, config, lead)
    return result


def _quantization(tensors, index):
    q = tensors[index]["quantization_parameters"]
    return {"dtype": np.dtype(tensors[index]["dtype"]).name, "scale": float(q["scales"][0]),
            "zero_point": int(q["zero_points"][0])}


def _quantization_text(report):
    if not report["qat_epochs"]:
        return "post-training only"
    shipped = "QAT" if report["quantization"] == "qat" else "post-training"
    return (f"{shipped} (better on validation: QAT {report['qat_epochs']} epoch(s) "
            f"{100 * report['qat_int8_val_accuracy']:.2f} %, post-training "
            f"{100 * report['ptq_int8_val_accuracy']:.2f} %)")


def report_markdown(report):
    """report.md: every figure of report.json as a table."""
    def pct(value):
        return f"{100 * value:.2f} %"
    total = report["test_clips"]
    rows = [
        ("model", report.get("model", "?")),
        ("quantization", _quantization_text(report)),
        ("test clips", str(total)),
        ("float fused model accuracy", pct(report["float_accuracy"])),
    ]
    if "qat_keras_accuracy" in report:
        rows.append(("QAT Keras model accuracy (fake quant)", pct(report["qat_keras_accuracy"])))
        rows.append(("post-training int8 accuracy (for comparison)",
                     pct(report["ptq_int8_accuracy"])))
    rows += [
        ("int8 accuracy, TFLite reference kernels", pct(report["int8_accuracy"])),
        ("int8 accuracy, TFLite default kernels", pct(report["tflite_default_kernels_accuracy"])),
        ("int8 accuracy, TFLite Micro", pct(report["tflm_accuracy"])),
        ("int8 - float", f"{100 * report['int8_minus_float']:+.2f} points"),
    ]
    if "int8_minus_qat_keras" in report:
        rows.append(("int8 - QAT Keras model (rounding loss alone)",
                     f"{100 * report['int8_minus_qat_keras']:+.2f} points"))
    rows += [
        ("TFLM outputs identical to TFLite reference",
         f"{report['tflm_identical_outputs']} / {total}"),
        ("TFLite default-kernel outputs identical to reference",
         f"{report['tflite_default_identical_outputs']} / {total}"),
        ("TFLM arena used (reference kernels)", f"{report['arena_used_bytes']} bytes"),
        ("CMSIS-NN scratch (largest op)", f"{report['cmsis_nn_scratch_bytes']} bytes"),
        ("kTensorArenaSize", f"{report['tensor_arena_size']} bytes"),
        ("flash (flatbuffer)", f"{report['flatbuffer_bytes']} bytes"),
        ("parameters", f"{report['params']:,}"),
        ("MACs", f"{report['macs']:,}"),
        ("ops", ", ".join(report["ops"])),
        ("op sequence", " > ".join(report["op_sequence"])),
        ("input quantization", _q_text(report["input_quantization"])),
        ("output quantization", _q_text(report["output_quantization"])),
    ]
    stream = report.get("streaming")
    if stream and stream["streamable"]:
        rows += [
            ("streaming model (model_int8_stream.tflite, in model_data.cc)",
             f"{stream['frames_per_call']} new frames a call, {stream['state_bytes']} bytes of "
             f"state; outputs identical to the whole-window model on "
             f"{stream['identical_outputs']} / {stream['clips']} test clips"),
            ("streaming int8 accuracy, TFLite Micro (each clip's window)",
             pct(stream["accuracy"])),
            ("streaming kTensorArenaSize (TFLM use + CMSIS-NN scratch)",
             f"{stream['tensor_arena_size']} bytes ({stream['arena_used_bytes']} + "
             f"{stream['cmsis_nn_scratch_bytes']})"),
            ("streaming flash (flatbuffer)", f"{stream['flatbuffer_bytes']} bytes"),
        ]
        device = stream.get("continuous_frontend", {})
        if device.get("clips"):
            rows.append((
                "streaming accuracy as the device runs (frontend and state carried over), test "
                "clips that are files",
                f"{pct(device['after_silence'])} after 1 s of silence, "
                f"{pct(device['after_previous_clip'])} right after the previous clip; "
                f"{pct(device['per_clip_features'])} with per-clip features "
                f"({device['clips']} clips)"))
    elif stream:
        rows.append(("streaming model", f"none: {stream['reason']}"))
    lines = ["# Conversion report", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    labels = report["labels"]
    lines += ["", "## TFLite Micro confusion matrix (rows: true, columns: predicted)", "",
              "| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, report["tflm_confusion_matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _q_text(q):
    return f"{q['dtype']}, scale {q['scale']:.9g}, zero point {q['zero_point']}"


def write_artifacts(output_dir, tflite_bytes, report, config, labels, arduino_dir=None,
                    stream_bytes=None):
    """Writes every artifact atomically; returns their paths. model_data.{h,cc} hold the streaming
    model when there is one (the sketch runs it every `frames_per_call` hops), else the
    whole-window model."""
    os.makedirs(output_dir, exist_ok=True)
    tflite_path = os.path.join(output_dir, TFLITE_NAME)
    with io_utils.atomic_write(tflite_path, "wb") as f:
        f.write(tflite_bytes)
    paths = [tflite_path]
    stream_path = os.path.join(output_dir, STREAM_TFLITE_NAME)
    if stream_bytes is not None:
        with io_utils.atomic_write(stream_path, "wb") as f:
            f.write(stream_bytes)
        paths.append(stream_path)
        sketch_bytes, sketch = stream_bytes, report["streaming"]
    else:
        if os.path.exists(stream_path):  # from an earlier conversion of another model
            os.remove(stream_path)
        sketch_bytes, sketch = tflite_bytes, report
    for directory in [output_dir] + ([arduino_dir] if arduino_dir else []):
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"--arduino_dir is not a directory: {directory}")
        paths += carray.write_model_data(directory, sketch_bytes, config, labels,
                                         sketch["tensor_arena_size"], sketch["ops"],
                                         sketch["arena_used_bytes"], _chosen_threshold(report))
    json_path = os.path.join(output_dir, REPORT_JSON)
    io_utils.atomic_write_json(json_path, report)
    md_path = os.path.join(output_dir, REPORT_MD)
    with io_utils.atomic_write(md_path, "w") as f:
        f.write(report_markdown(report))
    return paths + [json_path, md_path]


def _chosen_threshold(report):
    chosen = (report.get("wake_word") or {}).get("threshold_for_target")
    return chosen["threshold"] if chosen else None


def wake_word_label(labels):
    """The one label that is neither `_silence_` nor `_unknown_`; ValueError if there are more."""
    words = [label for label in labels if label not in (SILENCE_LABEL, UNKNOWN_LABEL)]
    if len(words) != 1:
        raise ValueError(f"--wake_word_positives needs a wake-word model (one label besides "
                         f"{SILENCE_LABEL} and {UNKNOWN_LABEL}); this one has {words}")
    return words[0]


def convert(model_dir, qat_epochs=3, data_dir=None, output_dir=None, arduino_dir=None,
            learning_rate=1e-4, batch_size=100, representative_samples=200, cache_dir=None,
            wake_word_positives=None, wake_word_negatives=None, target_fa_per_hour=1.0):
    """The whole conversion of a training output directory; returns (report dict, artifact paths).

    data_dir: evaluate on another copy of the data (default: the one in features.json);
    output_dir: where the artifacts go (default: model_dir); arduino_dir: also write
    model_data.h/.cc there; cache_dir: feature cache (default: metrics.json's, else
    <model_dir>/feature_cache); wake_word_positives / wake_word_negatives: folders of real
    recordings of the wake word and of other audio: the model is evaluated on them as a wake word
    (report["wake_word"]) and the threshold for `target_fa_per_hour` goes into model_data.h.
    FileNotFoundError / ValueError (export.DeployError for a model TFLM cannot run) name the file,
    option, op or layer that is wrong."""
    if arduino_dir and not os.path.isdir(arduino_dir):
        raise FileNotFoundError(f"--arduino_dir is not a directory: {arduino_dir}")
    if bool(wake_word_positives) != bool(wake_word_negatives):
        raise ValueError("--wake_word_positives and --wake_word_negatives go together (real "
                         "recordings of the wake word, and of other audio)")
    model, config, labels, data_spec, training_metrics = load_training_output(model_dir)
    if wake_word_positives:  # bad input is named before the conversion's minutes of work
        wake_word = wake_word_label(labels)
        wake_files = [evaluate_wake_word.audio_files(folder, what) for folder, what in (
            (wake_word_positives, "wake_word_positives"),
            (wake_word_negatives, "wake_word_negatives"))]
    cache_dir = cache_dir or training_metrics.get("cache_dir") or os.path.join(model_dir,
                                                                               "feature_cache")
    dataset = load_data(data_spec, config, data_dir, cache_dir)
    if list(dataset.labels) != list(labels):
        raise ValueError(f"labels of the data {dataset.labels} differ from features.json {labels}")
    tflite_bytes, stream_bytes, report = convert_and_verify(
        model, dataset, labels, qat_epochs, learning_rate=learning_rate, batch_size=batch_size,
        representative_samples=representative_samples, log=logging.info)
    report.update(complexity.count_params_and_macs(model))
    report["model"] = training_metrics.get("model", model.name)
    report["data_dir"] = (data_dir if data_dir is not None else (data_spec or {}).get("data_dir"))
    if wake_word_positives:
        # The sketch's model on the real recordings: its threshold_for_target becomes
        # model_data.h's kDetectionThreshold (write_artifacts).
        report["wake_word"] = evaluate_wake_word.evaluate(
            stream_bytes if stream_bytes is not None else tflite_bytes, config, labels,
            wake_word, *wake_files, target_fa_per_hour=target_fa_per_hour, log=logging.info)
    paths = write_artifacts(output_dir or model_dir, tflite_bytes, report, config, labels,
                            arduino_dir, stream_bytes)
    return report, paths
