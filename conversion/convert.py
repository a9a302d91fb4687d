"""Quantization-aware training, int8 conversion and TFLite Micro verification of a trained model.

  python -m conversion.convert --model_dir=runs/demo [--qat_epochs=3] [--data_dir=DIR]
      [--output_dir=DIR] [--arduino_dir=arduino/kws]

The command line over tflm_kws.conversion.convert (its options are the flags); see
docs/conversion.md.
"""
import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import app
from absl import flags

from tflm_kws import cli
from tflm_kws import conversion
from tflm_kws import evaluate_wake_word

FLAGS = flags.FLAGS


def define_flags():
    """Command-line flags (defined on demand, so importing this module defines none)."""
    flags.DEFINE_string("model_dir", None,
                        "Training output directory (fused.keras, features.json).")
    flags.DEFINE_integer("qat_epochs", 3, "Quantization-aware training epochs; 0 = post-training "
                         "quantization only.", lower_bound=0)
    flags.DEFINE_string("data_dir", None, "Data directory (default: the one recorded in "
                        "features.json; the synthetic wake-word set when that is null).")
    flags.DEFINE_string("output_dir", None, "Where the artifacts go (default: --model_dir).")
    flags.DEFINE_string("arduino_dir", None, "Also write model_data.h/.cc into this sketch folder.")
    flags.DEFINE_float("qat_learning_rate", 1e-4,
                       "Adam learning rate of quantization-aware training.")
    flags.DEFINE_integer("batch_size", 100, "Batch size of quantization-aware training.",
                         lower_bound=1)
    flags.DEFINE_integer("representative_samples", 200, "Training clips used to calibrate the int8 "
                         "ranges.", lower_bound=1)
    flags.DEFINE_string("wake_word_positives", None, "Folder of real recordings of the wake "
                        "word (any length): with --wake_word_negatives, the model is evaluated as "
                        "a wake word (tflm_kws.evaluate_wake_word) and the threshold for "
                        "--target_fa_per_hour goes into model_data.h. Use recordings the model "
                        "was not trained or tuned on.")
    flags.DEFINE_string("wake_word_negatives", None, "Folder of real audio without the wake word "
                        "(other speech, noise; hours for a 1-per-hour rate).")
    flags.DEFINE_float("target_fa_per_hour", 1.0, "False accepts per hour the threshold is "
                       "chosen for.", lower_bound=0.0)
    flags.DEFINE_string("cache_dir", None, "Feature cache (default: metrics.json's cache_dir, else "
                        "<model_dir>/feature_cache).")


def main(argv):
    del argv
    cli.quiet_unless_verbose(FLAGS)
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    try:
        report, paths = conversion.convert(
            FLAGS.model_dir, FLAGS.qat_epochs, FLAGS.data_dir, FLAGS.output_dir, FLAGS.arduino_dir,
            FLAGS.qat_learning_rate, FLAGS.batch_size, FLAGS.representative_samples,
            FLAGS.cache_dir, FLAGS.wake_word_positives, FLAGS.wake_word_negatives,
            FLAGS.target_fa_per_hour)
    except (FileNotFoundError, ValueError) as err:
        # Bad input or an undeployable model (export.DeployError): the message names the file,
        # flag, op or layer; a traceback would bury it.
        raise SystemExit(f"conversion.convert: error: {err}") from err
    total = report["test_clips"]
    print(f"float {report['float_accuracy']:.4f} | int8 (TFLite ref) {report['int8_accuracy']:.4f}"
          f" | TFLM {report['tflm_accuracy']:.4f} | int8 - float "
          f"{100 * report['int8_minus_float']:+.2f} pts | TFLM == TFLite on "
          f"{report['tflm_identical_outputs']}/{total} clips")
    print(f"arena {report['arena_used_bytes']} B used, kTensorArenaSize "
          f"{report['tensor_arena_size']} | flash {report['flatbuffer_bytes']} B | params "
          f"{report['params']:,} | MACs {report['macs']:,} | ops {', '.join(report['ops'])}")
    if "wake_word" in report:
        print(evaluate_wake_word.summary_line(report["wake_word"]))
    if report.get("data_dir") is None:
        print("note: the accuracies above are on synthetic speech (text-to-speech voices), not "
              "real-use figures: real voices score far lower (docs/wake_word.md). Give real "
              "recordings with --wake_word_positives / --wake_word_negatives (make demo "
              "DEMO_POSITIVES=... DEMO_NEGATIVES=...) for recall and false accepts per hour.")
    for path in paths:
        print(path)
    if report["tflm_identical_outputs"] != total:
        raise SystemExit(f"TFLM and TFLite reference outputs differ on "
                         f"{total - report['tflm_identical_outputs']} of {total} test clips")


if __name__ == "__main__":
    define_flags()
    app.run(main)
