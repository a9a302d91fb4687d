"""One experiment of the benchmark and the study: train -> convert (QAT) -> measure, resumable.

An `Experiment` is (model, hyper-parameters, seed, training recipe, conversion). `run` trains it
with `tflm_kws.training` (its options are `python -m training.train`'s flags, so the recipe means
what that command line means, and the log prints the command), converts it with
`tflm_kws.conversion.convert` (unless the experiment asks for the float deploy graph only), both in
this process, then measures what the pipeline's own reports do not hold: the per-clip predictions
(for paired tests) and the TFLM latency per inference.

Every training run owns a directory `<work_dir>/<model>-<recipe hash>/seed<seed>/`. The hash covers
the training recipe as training runs it (its run identity less the seed; not the conversion), so a
changed recipe or default never reuses an old run, and experiments that train alike share one
training whoever asks for it (the benchmark reuses a recipe-search run of its recipe; the study's
configurations with the same recipe share one twin). Each stage is skipped when its final
artifact exists (`train/metrics.json`, `convert_qat<N>/report.json`, `result_<stage>.json`), and
training itself resumes from its last checkpoint, so a killed benchmark continues where it stopped.

Latency is measured with the `tflite_micro` Python runtime: it runs the real TFLM C++ interpreter
(reference kernels, as compiled into the wheel) on this host, in this process; it is a host figure
for comparing models with each other, not a microcontroller figure.

The paired statistics shared by the benchmark and the study (exact McNemar test on per-clip
outcomes, sign test over seeds) are here too; they use exact integer binomial tails, no scipy.
"""
import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
import time

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np

from tflm_kws import io_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(REPO, "..", "shared", "data", "speech_commands_v2_dev")
TRAIN_SUBDIR = "train"
SPEC_FILE = "experiment.json"
# Enough invokes for a stable median on a busy shared host; a full test split is usually more.
DEFAULT_LATENCY_INVOKES = 200
# Host memory is not the constraint being measured: the arena size a model needs is measured by
# conversion (`arena_bytes`); the interpreter here only needs enough room.
_HOST_ARENA_BYTES = 1 << 20


# ----------------------------------------------------------------------------------------------
# Paired statistics (exact, numpy/scipy-free).
# ----------------------------------------------------------------------------------------------
def binomial_two_sided_p(k, n):
    """Exact two-sided p-value of k successes in n fair coin flips (sign test / exact McNemar).

    p = min(1, 2 * P(X <= min(k, n - k))), X ~ Binomial(n, 1/2); computed with integer arithmetic,
    so it is exact for any n. n == 0 (no informative pairs) gives 1.0.
    """
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def mcnemar_exact(correct_a, correct_b):
    """Exact McNemar test on paired per-clip outcomes (True = correct).

    Returns {"a_only": clips A got right and B wrong, "b_only": the reverse, "p_value": two-sided
    exact binomial p on the discordant pairs}.
    """
    correct_a = np.asarray(correct_a, dtype=bool).reshape(-1)
    correct_b = np.asarray(correct_b, dtype=bool).reshape(-1)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired outcomes differ in length: {correct_a.size} vs {correct_b.size}")
    a_only = int(np.sum(correct_a & ~correct_b))
    b_only = int(np.sum(~correct_a & correct_b))
    return {"a_only": a_only, "b_only": b_only,
            "p_value": binomial_two_sided_p(min(a_only, b_only), a_only + b_only)}


def sign_test(values_a, values_b):
    """Two-sided sign test over paired values (e.g. accuracy per seed); ties are dropped.

    With 3 seeds the smallest possible p is 0.25: it can show consistency, never significance.
    """
    values_a = np.asarray(values_a, dtype=np.float64).reshape(-1)
    values_b = np.asarray(values_b, dtype=np.float64).reshape(-1)
    if values_a.shape != values_b.shape:
        raise ValueError(f"paired values differ in length: {values_a.size} vs {values_b.size}")
    wins = int(np.sum(values_a > values_b))
    losses = int(np.sum(values_a < values_b))
    return {"wins": wins, "losses": losses, "ties": int(values_a.size - wins - losses),
            "p_value": binomial_two_sided_p(min(wins, losses), wins + losses)}


def summarize(values):
    """{"mean", "std" (sample, ddof=1; 0 for one value), "min", "max", "n"} of a list of numbers."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("cannot summarize an empty list")
    return {"mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "n": int(values.size)}


def relative_error_reduction(accuracy, baseline_accuracy):
    """(baseline error - error) / baseline error; positive = fewer errors than the baseline."""
    baseline_error = 1.0 - float(baseline_accuracy)
    if baseline_error <= 0.0:
        raise ValueError("baseline accuracy is 1.0: relative error reduction is undefined")
    return (baseline_error - (1.0 - float(accuracy))) / baseline_error


def paired_comparison(results, baseline_results, prediction_key="float_test"):
    """Compares two lists of experiment results (same seeds) on the same test clips.

    Pairs result i with baseline_results i (callers sort both by seed). McNemar is computed on the
    per-clip outcomes pooled over the seed pairs; the sign test on per-seed accuracy.
    """
    if len(results) != len(baseline_results) or not results:
        raise ValueError(f"need equally many results on both sides, got {len(results)} and "
                         f"{len(baseline_results)}")
    correct, baseline_correct, accuracy, baseline_accuracy = [], [], [], []
    for result, baseline in zip(results, baseline_results):
        labels, predictions = load_predictions(result, prediction_key)
        baseline_labels, baseline_predictions = load_predictions(baseline, prediction_key)
        digest = ("val_features_sha1" if prediction_key.startswith("float_val")
                  else "test_features_sha1")
        if (not np.array_equal(labels, baseline_labels)
                or result.get(digest) != baseline.get(digest)):
            raise ValueError(f"{result['run_dir']} and {baseline['run_dir']} were not evaluated on "
                             f"the same clips: a paired test is impossible")
        correct.append(predictions == labels)
        baseline_correct.append(baseline_predictions == baseline_labels)
        accuracy.append(float(np.mean(correct[-1])))
        baseline_accuracy.append(float(np.mean(baseline_correct[-1])))
    accuracy_summary, baseline_summary = summarize(accuracy), summarize(baseline_accuracy)
    error = 1.0 - np.asarray(accuracy)
    baseline_error = 1.0 - np.asarray(baseline_accuracy)
    return {
        "accuracy": accuracy_summary,
        "baseline_accuracy": baseline_summary,
        "relative_error_reduction": relative_error_reduction(accuracy_summary["mean"],
                                                             baseline_summary["mean"]),
        # Seed ranges do not overlap: every seed of one side has fewer errors than every seed of
        # the other.
        "beyond_seed_spread": bool(error.max() < baseline_error.min()),
        "mcnemar": mcnemar_exact(np.concatenate(correct), np.concatenate(baseline_correct)),
        "sign_test": sign_test(accuracy, baseline_accuracy),
    }


# ----------------------------------------------------------------------------------------------
# Experiments.
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Experiment:
    """One training run and what is done with it.

    train_flags: further `training.train` flags (e.g. batch_size, learning_rate), name -> value.
    qat_epochs: conversion's `--qat_epochs`; None skips conversion (the float accuracy of the fused
      deploy graph is then the result, as in the study).
    """
    model: str
    hparams: dict
    seed: int
    epochs: int
    data_dir: str = None
    train_flags: dict = dataclasses.field(default_factory=dict)
    qat_epochs: int = None

    def recipe(self):
        """Everything that defines the training run except the seed (JSON-able)."""
        return {"model": self.model, "hparams": self.hparams, "epochs": int(self.epochs),
                "data_dir": os.path.abspath(self.data_dir) if self.data_dir else None,
                "train_flags": self.train_flags}

    def stage(self):
        """Name of what is measured after training: "float" or "qat<N>" (conversion's epochs)."""
        return "float" if self.qat_epochs is None else f"qat{int(self.qat_epochs)}"

    def recipe_hash(self):
        """Hash of the recipe as training will run it: the run identity of
        `training.config_from_options` (the model's effective hyper-parameters and every training
        option, defaults filled in) less the seed, so that a changed default (of a model or of a
        model's recipe) never reuses runs made under the old one."""
        from tflm_kws import training  # pylint: disable=import-outside-toplevel
        options = dict(self.train_flags, model=self.model, model_params=self.hparams,
                       epochs=self.epochs, data_dir=self.data_dir)
        try:
            identity = dict(training.config_from_options("unused", **options).identity())
            identity.pop("seed")
        except (TypeError, ValueError):
            identity = self.recipe()  # invalid options: training will say so by name
        text = json.dumps(identity, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:10]

    def run_dir(self, work_dir):
        return os.path.join(os.path.abspath(work_dir), f"{self.model}-{self.recipe_hash()}",
                            f"seed{self.seed}")


def merge_train_flags(base, extra):
    """`extra` over `base` (training.train flags); their "data_params" objects merge key by key."""
    merged = dict(base)
    for key, value in extra.items():
        if key == "data_params":
            merged[key] = dict(base.get(key, {}), **value)
        else:
            merged[key] = value
    return merged


def _flag_value(value):
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def train_argv(experiment, train_dir, cache_dir):
    """The experiment's `python -m training.train` flags (what a user would type to repeat it)."""
    argv = [f"--model={experiment.model}",
            f"--model_params={json.dumps(experiment.hparams, sort_keys=True)}",
            f"--epochs={experiment.epochs}", f"--seed={experiment.seed}",
            f"--output_dir={train_dir}", f"--cache_dir={cache_dir}"]
    if experiment.data_dir:
        argv.append(f"--data_dir={os.path.abspath(experiment.data_dir)}")
    for name, value in sorted(experiment.train_flags.items()):
        argv.append(f"--{name}={_flag_value(value)}")
    return argv


def train(experiment, train_dir, cache_dir):
    """Trains (or resumes) through tflm_kws.training, in process, with the same options (and
    checks) as `python -m training.train` with `train_argv`'s flags."""
    import tf_keras as keras
    from tflm_kws import data, training
    options = dict(experiment.train_flags)
    options.update(output_dir=train_dir, cache_dir=cache_dir, model=experiment.model,
                   model_params=experiment.hparams, epochs=experiment.epochs,
                   seed=experiment.seed, data_dir=experiment.data_dir,
                   verbose=2)  # one line per epoch: a bar per step would flood a benchmark's log
    try:
        config = training.config_from_options(**options)
        # Build the feature cache (one per data seed, shared by every model) before training, so
        # that it is not counted in the training wall time of whichever model comes first.
        data.load(config.data_spec, config.frontend_config, config.cache_dir)
        training.train(config)
    except (TypeError, training.UserInputError) as e:
        raise ValueError(f"training options {options}: {e}") from None
    except Exception as e:  # pylint: disable=broad-except  (reported per model by the caller)
        raise RuntimeError(f"training in {train_dir} failed: {type(e).__name__}: {e}") from e
    finally:
        keras.backend.clear_session()  # the next experiment starts from a clean Keras state


def convert(experiment, train_dir, convert_dir, cache_dir):
    """Conversion (QAT, int8, TFLM verification) through tflm_kws.conversion, in process."""
    import tf_keras as keras
    from tflm_kws import conversion
    try:
        conversion.convert(train_dir, qat_epochs=experiment.qat_epochs, output_dir=convert_dir,
                           cache_dir=cache_dir)
    except Exception as e:  # pylint: disable=broad-except  (reported per model by the caller)
        raise RuntimeError(f"conversion of {train_dir} failed: {type(e).__name__}: {e}") from e
    finally:
        keras.backend.clear_session()


def _read_json(path):
    with open(path) as f:
        return json.load(f)


_DATA_CACHE = {}


def _load_data(train_dir, cache_dir):
    """The run's data set (as recorded in its features.json), loaded once per process."""
    from tflm_kws import data, frontend
    features_json = os.path.join(train_dir, "features.json")
    config, labels, data_spec = frontend.load_features_json(features_json)
    key = (json.dumps(config.to_dict(), sort_keys=True), json.dumps(data_spec, sort_keys=True),
           os.path.abspath(cache_dir))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = data.load(data.DataSpec.from_dict(data_spec), config, cache_dir)
    kws_data = _DATA_CACHE[key]
    if list(kws_data.labels) != list(labels):
        raise ValueError(f"{train_dir}: labels in features.json {labels} differ from the data's "
                         f"{kws_data.labels}")
    return kws_data


def _float_predictions(train_dir, features):
    """Per-clip predictions of the fused (deploy graph) float model."""
    import tf_keras as keras
    from tflm_kws import frontend, metrics
    fused = keras.models.load_model(os.path.join(train_dir, "fused.keras"), compile=False)
    return metrics.predict_classes(fused, frontend.features_to_model_input(features))


def tflm_predictions_and_latency(tflite_path, features, min_invokes=DEFAULT_LATENCY_INVOKES):
    """Runs the int8 model in the TFLM interpreter on every clip; times each `invoke()` alone.

    Inputs are quantized as the device does (`tflm_kws.evaluate.quantize_input`). When the split
    has fewer clips than `min_invokes`, the clips are cycled so that the median is still over
    `min_invokes` timings.
    Returns (predictions np.int32 [N], per-invoke seconds list).
    """
    from tflm_kws import evaluate, export
    with open(tflite_path, "rb") as f:
        interpreter = export.tflm_interpreter(f.read(), arena_size=_HOST_ARENA_BYTES)
    detail = interpreter.get_input_details(0)
    shape = tuple(int(d) for d in detail["shape"])
    quantized = evaluate.quantize_input(features, detail)
    predictions = np.zeros(len(quantized), dtype=np.int32)
    seconds = []
    for i in range(max(len(quantized), min_invokes)):
        # TFLM reuses the input tensor's memory during Invoke(): set the input before every call.
        interpreter.set_input(quantized[i % len(quantized)].reshape(shape), 0)
        start = time.perf_counter()
        interpreter.invoke()
        seconds.append(time.perf_counter() - start)
        if i < len(quantized):
            predictions[i] = int(np.argmax(np.asarray(interpreter.get_output(0)).reshape(-1)))
    return predictions, seconds


def _conversion_fields(report):
    """The benchmark's fields from conversion's report.json."""
    return {
        "float_accuracy": float(report["float_accuracy"]),
        "int8_accuracy": float(report["int8_accuracy"]),  # TFLite, reference kernels
        "tflm_accuracy": float(report["tflm_accuracy"]),
        "int8_drop": -float(report["int8_minus_float"]),  # float - int8: positive = int8 worse
        "tflm_identical": int(report["tflm_identical_outputs"]),
        "flatbuffer_bytes": int(report["flatbuffer_bytes"]),
        "arena_bytes": int(report["arena_used_bytes"]),
        "tensor_arena_size": int(report["tensor_arena_size"]),
        "ops": list(report["ops"]),
        "qat_seconds": float(report.get("qat_seconds", 0.0)),
        "quantization": report["quantization"],  # the shipped flatbuffer: "qat" or "ptq"
        # The streaming form (tflm_kws.streaming): bit-exact on how many test clips, or absent.
        "stream_identical": (report["streaming"]["identical_outputs"]
                             if report.get("streaming", {}).get("streamable") else None),
    }


def _identity(spec):
    """(recipe hash, seed) of an experiment.json spec: what makes two specs the same run."""
    fields = {k: spec[k] for k in ("model", "hparams", "seed", "epochs", "data_dir",
                                   "train_flags")}
    return Experiment(**fields).recipe_hash(), spec["seed"]


def selected_names(flag, requested, known, quick_names, quick):
    """The names --`flag` asks for (default: all of `known`, or `quick_names` with --quick);
    absl's UsageError names the unknown ones."""
    from absl import app  # pylint: disable=import-outside-toplevel
    names = requested or (list(quick_names) if quick else list(known))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise app.UsageError(f"--{flag}: unknown {unknown}; valid: {', '.join(known)}")
    return names


def checked_data_dir(flag_values):
    """--data_dir, absolute; absl's UsageError when it is not a directory."""
    from absl import app  # pylint: disable=import-outside-toplevel
    data_dir = os.path.abspath(flag_values.data_dir)
    if not os.path.isdir(data_dir):
        raise app.UsageError(f"--data_dir {data_dir} is not a directory")
    return data_dir


def quick_dirs(flag_values, prefix):
    """(output_dir, work_dir) of a --quick smoke run: the flags' values where given on the command
    line, else folders in a new temp directory (a smoke run never writes into bench/ or runs/)."""
    given = {name: flag_values[name].present for name in ("output_dir", "work_dir")}
    scratch = None if all(given.values()) else tempfile.mkdtemp(prefix=prefix)
    return tuple(flag_values[name].value if given[name] else os.path.join(scratch, sub)
                 for name, sub in (("output_dir", "out"), ("work_dir", "work")))


def define_run_flags(outputs):
    """The flags the benchmark and the study share; `outputs` names what --output_dir receives."""
    from absl import flags  # pylint: disable=import-outside-toplevel
    flags.DEFINE_string("train_flags", "{}", "JSON object of further training.train flags for "
                        "every run, e.g. '{\"batch_size\": 100}'.")
    flags.DEFINE_string("data_dir", DEFAULT_DATA_DIR,
                        "Speech Commands layout directory (12-class task).")
    flags.DEFINE_string("output_dir", os.path.join(REPO, "bench"), f"Where {outputs} go.")
    flags.DEFINE_string("work_dir", os.path.join(REPO, "runs", "bench"),
                        "Where the training and conversion runs go, reused when re-run. The "
                        "benchmark, the recipe search and the study share it by default: a run "
                        "with the same training recipe is trained once for all of them.")
    flags.DEFINE_string("cache_dir", None, "Feature cache; default <work_dir>/cache.")


def load_predictions(result, key):
    """(labels, predictions under `key`) saved by `run` for a result row."""
    with np.load(result["predictions"]) as saved:
        if key not in saved:
            raise KeyError(f"{result['predictions']} has no '{key}' predictions "
                           f"(has {sorted(saved.files)})")
        label_key = "val_labels" if key.startswith("float_val") else "test_labels"
        return saved[label_key], saved[key]


def run(experiment, work_dir, cache_dir, latency_invokes=DEFAULT_LATENCY_INVOKES, log=print):
    """Runs (or resumes) one experiment; returns its row (also <run_dir>/result_<stage>.json)."""
    run_dir = experiment.run_dir(work_dir)
    result_path = os.path.join(run_dir, f"result_{experiment.stage()}.json")
    predictions_path = os.path.join(run_dir, f"predictions_{experiment.stage()}.npz")
    if os.path.exists(result_path):
        return _read_json(result_path)
    os.makedirs(run_dir, exist_ok=True)
    spec_path = os.path.join(run_dir, SPEC_FILE)
    spec = dict(experiment.recipe(), seed=experiment.seed)
    if os.path.exists(spec_path):
        # The same run may be asked for with defaults spelled out or left implicit.
        recorded = _read_json(spec_path)
        if _identity(recorded) != _identity(spec):
            raise ValueError(f"{spec_path} describes another experiment than {spec}")
    else:
        io_utils.atomic_write_json(spec_path, spec)
    train_dir = os.path.join(run_dir, TRAIN_SUBDIR)
    convert_dir = os.path.join(run_dir, f"convert_{experiment.stage()}")

    if not os.path.exists(os.path.join(train_dir, "metrics.json")):
        log(f"[experiment] training {experiment.model} seed {experiment.seed}: python -m "
            f"training.train {' '.join(train_argv(experiment, train_dir, cache_dir))}")
        train(experiment, train_dir, cache_dir)
    training_metrics = _read_json(os.path.join(train_dir, "metrics.json"))
    report = None
    if experiment.qat_epochs is not None:
        if not os.path.exists(os.path.join(convert_dir, "report.json")):
            log(f"[experiment] converting {experiment.model} seed {experiment.seed} -> "
                f"{convert_dir}")
            convert(experiment, train_dir, convert_dir, cache_dir)
        report = _read_json(os.path.join(convert_dir, "report.json"))

    log(f"[experiment] measuring {experiment.model} seed {experiment.seed}")
    kws_data = _load_data(train_dir, cache_dir)
    test_features, test_labels = kws_data.features("testing")
    val_features, val_labels = kws_data.features("validation")
    float_predictions = _float_predictions(train_dir, np.concatenate([test_features,
                                                                       val_features]))
    predictions = {"test_labels": test_labels.astype(np.int32),
                   "val_labels": val_labels.astype(np.int32),
                   "float_test": float_predictions[:len(test_labels)],
                   "float_val": float_predictions[len(test_labels):]}
    row = {
        "model": experiment.model, "hparams": experiment.hparams, "seed": experiment.seed,
        "epochs": experiment.epochs, "train_flags": experiment.train_flags,
        "qat_epochs": experiment.qat_epochs, "run_dir": run_dir, "predictions": predictions_path,
        "params": int(training_metrics["params"]), "macs": int(training_metrics["macs"]),
        "train_params": int(training_metrics["train_params"]),
        "train_seconds": float(training_metrics["wall_seconds"]),
        "train_samples_per_second": float(training_metrics["train_samples_per_second"]),
        "val_accuracy": float(training_metrics["val_accuracy"]),
        "test_accuracy": float(training_metrics["test_accuracy"]),
        "fused_val_accuracy": float(np.mean(predictions["float_val"] == val_labels)),
        "fused_test_accuracy": float(np.mean(predictions["float_test"] == test_labels)),
        "test_clips": int(len(test_labels)),
        # Identify the evaluated clips, so that paired tests can check they compare like for like.
        "test_features_sha1": hashlib.sha1(np.ascontiguousarray(test_features)).hexdigest(),
        "val_features_sha1": hashlib.sha1(np.ascontiguousarray(val_features)).hexdigest(),
    }
    if report is not None:
        tflm_test, seconds = tflm_predictions_and_latency(
            os.path.join(convert_dir, "model_int8.tflite"), test_features, latency_invokes)
        predictions["tflm_test"] = tflm_test
        row.update(_conversion_fields(report))
        row["tflm_latency_ms"] = float(np.median(seconds) * 1e3)
        row["tflm_latency_invokes"] = len(seconds)
        # The TFLM run here and conversion's own verification must agree on the same clips.
        remeasured = float(np.mean(tflm_test == test_labels))
        if abs(remeasured - row["tflm_accuracy"]) > 1e-9:
            raise ValueError(f"{run_dir}: TFLM accuracy measured here ({remeasured:.6f}) differs "
                             f"from conversion's report ({row['tflm_accuracy']:.6f})")
    with io_utils.atomic_write(predictions_path, "wb") as f:
        np.savez(f, **predictions)
    io_utils.atomic_write_json(result_path, row)
    return row


def m4_cost(result, arduino_src):
    """The emulated Cortex-M4 cost (tflm_kws.m4_cost) of the flatbuffer a converted result ships
    to the sketch (the streaming one when the model streams), cached in its run directory
    (m4_cost_<stage>.json); raises m4_cost.M4CostError."""
    # pylint: disable-next=import-outside-toplevel
    from tflm_kws import conversion, frontend, m4_cost as m4
    stage = f"qat{int(result['qat_epochs'])}"
    path = os.path.join(result["run_dir"], f"m4_cost_{stage}.json")
    if os.path.exists(path):
        return _read_json(path)
    convert_dir = os.path.join(result["run_dir"], f"convert_{stage}")
    tflite_path = os.path.join(convert_dir, conversion.STREAM_TFLITE_NAME)
    if not os.path.exists(tflite_path):
        tflite_path = os.path.join(convert_dir, conversion.TFLITE_NAME)
    with open(tflite_path, "rb") as f:
        tflite_bytes = f.read()
    config, labels, _ = frontend.load_features_json(
        os.path.join(result["run_dir"], TRAIN_SUBDIR, "features.json"))
    measured = m4.measure(tflite_bytes, arduino_src, config, labels)
    io_utils.atomic_write_json(path, measured)
    return measured


def write_report(output_dir, stem, report, markdown_text):
    """<output_dir>/<stem>.json and <stem>.md, each written atomically."""
    os.makedirs(output_dir, exist_ok=True)
    io_utils.atomic_write_json(os.path.join(output_dir, f"{stem}.json"), report)
    with io_utils.atomic_write(os.path.join(output_dir, f"{stem}.md"), "w") as f:
        f.write(markdown_text)


def make_data_subset(data_dir, subset_dir, clips_per_split=(6, 2, 2)):
    """Builds a small Speech Commands layout (symlinks) from `data_dir`, for smoke runs.

    Takes the first (sorted) clips_per_split = (training, validation, testing) clips of every word
    folder, keeps the speaker-disjoint split of `data_dir`'s validation_list.txt / testing_list.txt,
    and links `_background_noise_` whole (silence is cut from it). Returns subset_dir.
    """
    data_dir = os.path.abspath(data_dir)
    lists = {}
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} not found: --data_dir must be a Speech Commands "
                                    f"layout with validation_list.txt and testing_list.txt")
        with open(path) as f:
            lists[split] = {line.strip() for line in f if line.strip()}
    chosen = {"training": [], "validation": [], "testing": []}
    for word in sorted(os.listdir(data_dir)):
        folder = os.path.join(data_dir, word)
        if word.startswith("_") or not os.path.isdir(folder):
            continue
        by_split = {"training": [], "validation": [], "testing": []}
        for name in sorted(os.listdir(folder)):
            relative = f"{word}/{name}"
            split = ("validation" if relative in lists["validation"] else
                     "testing" if relative in lists["testing"] else "training")
            by_split[split].append(relative)
        for split, count in zip(("training", "validation", "testing"), clips_per_split):
            chosen[split].extend(by_split[split][:count])
    os.makedirs(subset_dir, exist_ok=True)
    for relative in chosen["training"] + chosen["validation"] + chosen["testing"]:
        target = os.path.join(subset_dir, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink(os.path.join(data_dir, relative), target)
    noise = os.path.join(subset_dir, "_background_noise_")
    if os.path.isdir(os.path.join(data_dir, "_background_noise_")) and not os.path.lexists(noise):
        os.symlink(os.path.join(data_dir, "_background_noise_"), noise)
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        with io_utils.atomic_write(os.path.join(subset_dir, name), "w") as f:
            f.write("".join(line + "\n" for line in chosen[split]))
    return subset_dir


def machine_description():
    """CPU model and core count (from /proc/cpuinfo) and the platform, for result files."""
    import platform
    cpu_model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_model": cpu_model, "cpu_cores": os.cpu_count(),
            "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version()}


def entry_point_command(module):
    """`python -m <module> <args>` as the user typed it (sys.argv[0] is the module's file path)."""
    return " ".join(["python", "-m", module] + sys.argv[1:])
