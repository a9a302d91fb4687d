r"""Trains a keyword-spotting model and writes the training output directory.

  python -m training.train --model=repcnn --output_dir=runs/demo            # synthetic wake word
  python -m training.train --model=ds_cnn --data_dir=../shared/data/speech_commands_v2_dev \
      --output_dir=runs/ds_cnn --epochs=30

Re-running the same command continues a killed run after its last completed epoch (--resume,
default). The command line over tflm_kws.training (the flags are its options; the output
directory is described in docs/training.md).
"""
import tflm_kws  # noqa: F401  (first: selects Keras 2 before TensorFlow loads)

import math
import sys

from absl import app
from absl import flags

from tflm_kws import cli
from tflm_kws import data as kws_data
from tflm_kws import models
from tflm_kws import training
from tflm_kws.training import TrainConfig

FLAGS = flags.FLAGS
RECIPE = "Default: the --model's recipe (tflm_kws.recipes; docs/training.md)."
JSON_FLAGS = ("data_params", "frontend_params", "model_params")


def define_flags(flag_values=FLAGS):
    """Registers the command-line flags on `flag_values` (__main__ calls it: importing defines none,
    so this module and other entry points can be imported side by side)."""
    fv = flag_values
    string, integer, real, enum = (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float,
                                   flags.DEFINE_enum)
    string("data_dir", None, "Speech Commands tree or a folder-per-label tree of audio files. "
           "Absent: the synthetic wake-word set (espeak-ng) for --wake_word.", flag_values=fv)
    flags.DEFINE_list("wanted_words", None, "Comma-separated words to classify (other words become "
                      "_unknown_). Default: the 10 standard Speech Commands words, or every word "
                      "folder of a custom tree.", flag_values=fv)
    string("wake_word", kws_data.DataSpec().wake_word,
           "Phrase of the synthetic wake-word set (used when --data_dir is absent).",
           flag_values=fv)
    string("data_params", "{}", "JSON object of further tflm_kws.data.DataSpec fields, e.g. "
           "'{\"synthetic_positives\": 600}'. Augmentation fields left out are the --model's "
           "recipe's (tflm_kws.recipes).", flag_values=fv)
    string("frontend_params", "{}", "JSON object of FrontendConfig fields overriding TFLM "
           "micro_speech's defaults.", flag_values=fv)
    enum("model", "repcnn", sorted(models.MODELS), "Model of the zoo to train.", flag_values=fv)
    string("model_params", "{}", "JSON object of the model's hyper-parameters, e.g. "
           "'{\"channels\": 24}'.", flag_values=fv)
    # The recipe flags default to the --model's validated recipe (tflm_kws.recipes).
    integer("epochs", None, f"Training epochs. {RECIPE}", lower_bound=1, flag_values=fv)
    integer("batch_size", None, f"Global batch size (split across replicas by --strategy). "
            f"{RECIPE}", lower_bound=1, flag_values=fv)
    real("learning_rate", None, f"Peak learning rate (AdamW). {RECIPE}", flag_values=fv)
    enum("lr_schedule", None, list(training.LR_SCHEDULES),
         "cosine: linear warm-up over --warmup_fraction of all steps, then cosine decay to 0. "
         f"constant: --learning_rate throughout. {RECIPE}", flag_values=fv)
    real("warmup_fraction", None, "Fraction of all training steps spent warming up (cosine "
         f"schedule). {RECIPE}", lower_bound=0.0, upper_bound=0.5, flag_values=fv)
    real("weight_decay", None, "Decoupled weight decay of AdamW (biases and BatchNorm "
         f"parameters excluded). {RECIPE}", lower_bound=0.0, flag_values=fv)
    real("mixup_alpha", None, "Mixup (Zhang et al. 2018): each training "
         "example is mixed with another of its batch, features and one-hot labels, with a weight "
         "~ Beta(alpha, alpha) drawn per example; the loss is then cross-entropy on the soft "
         f"labels. 0: off. The paper uses 0.1-0.4. {RECIPE}", flag_values=fv)
    real("label_smoothing", None, "Label smoothing of the training loss (Szegedy et al. "
         f"2016): the target puts this mass evenly on all classes. 0: off. {RECIPE}",
         lower_bound=0.0, upper_bound=0.99, flag_values=fv)
    enum("class_weights", TrainConfig.class_weights, list(training.CLASS_WEIGHTS),
         "balanced: each training example's loss weighted by N / (classes * examples of its "
         "class), so every class counts the same (e.g. many real negatives, few wake-word "
         "positives). none: unweighted.", flag_values=fv)
    integer("seed", TrainConfig.seed,
            "Seed of weight initialisation, shuffling and on-the-fly augmentation.",
            flag_values=fv)
    integer("data_seed", 0,
            "Seed of the data set itself: which clips fill _silence_/_unknown_ in each split, the "
            "synthetic speech, the cached augmentation variants. Kept apart from --seed so that "
            "runs with different --seed are evaluated on the same clips.", flag_values=fv)
    string("output_dir", None, "Output directory (see docs/training.md).", flag_values=fv)
    flags.DEFINE_boolean("resume", True, "Continue the run in --output_dir after its last "
                         "completed epoch; --noresume discards that run and starts over.",
                         flag_values=fv)
    integer("fuse_every", TrainConfig.fuse_every, "Also fuse and verify the model every N epochs, "
            "logging the fused model's validation accuracy (0: only at the end).", lower_bound=0,
            flag_values=fv)
    string("init_from", None, "Transfer: a training output directory of the same --model and "
           "--model_params (e.g. trained on real Speech Commands words) whose weights start every "
           "layer but the classifier.", flag_values=fv)
    flags.DEFINE_list("freeze", [], "With --init_from: layers (by name, e.g. conv1,conv2,conv3) "
                      "that keep the transferred weights, untrained, BatchNorm in inference mode "
                      "(a fixed feature extractor).", flag_values=fv)
    enum("strategy", "default", list(training.STRATEGIES), "tf.distribute strategy: default (one "
         "device), mirrored (all local GPUs), multi_worker (MultiWorkerMirroredStrategy; needs "
         "TF_CONFIG).", flag_values=fv)
    string("cache_dir", training.DEFAULT_CACHE_DIR,
           "Cache of decoded audio and features (shared between runs).", flag_values=fv)
    flags.mark_flag_as_required("output_dir", flag_values=fv)
    for name in JSON_FLAGS:
        cli.register_json_object_validator(name, flag_values=fv)
    flags.register_validator("learning_rate", lambda value: value is None or value > 0,
                             message="--learning_rate must be > 0", flag_values=fv)
    flags.register_validator("mixup_alpha",
                             lambda value: value is None or (math.isfinite(value) and value >= 0),
                             message="--mixup_alpha must be a number >= 0 (0: no mixup)",
                             flag_values=fv)
    flags.register_validator("output_dir", lambda value: value is None or value.strip() != "",
                             message="--output_dir must not be empty", flag_values=fv)


def config_from_flags(flag_values=FLAGS):
    """TrainConfig from the parsed flags; training.UserInputError names the flag that is wrong."""
    options = {name: flag_values[name].value for name in training.OPTION_NAMES
               if name in flag_values}
    options.update({name: cli.json_object(flag_values[name].value, name) for name in JSON_FLAGS})
    return training.config_from_options(**options)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_unless_verbose(FLAGS)
    try:
        config = config_from_flags()
        result = training.train(config, training.make_strategy(FLAGS.strategy))
    except training.UserInputError as e:
        print(f"training.train: error: {e}", file=sys.stderr)
        return 2
    if result is not None:
        print(f"{config.model}: val accuracy {result['val_accuracy']:.4f} (fused "
              f"{result['fused_val_accuracy']:.4f}), test accuracy {result['test_accuracy']:.4f} "
              f"(fused {result['fused_test_accuracy']:.4f}), {result['params']} params, "
              f"{result['macs']} MACs -> {config.output_dir}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
