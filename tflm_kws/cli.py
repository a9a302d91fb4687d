"""What the command-line entry points share: JSON-object flags and quiet logging.

The library's functions take Python values; only entry points (training/train.py,
conversion/convert.py, tflm_kws.bench, tflm_kws.study, tflm_kws.evaluate) use this module.
"""
import json

from absl import app
from absl import flags
from absl import logging


def json_object(text, name):
    """The dict a JSON-object flag `--name` holds; app.UsageError naming the flag otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--{name} is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise app.UsageError(f"--{name} must be a JSON object, got {text!r}")
    return value


def register_json_object_validator(name, flag_values=flags.FLAGS):
    """Rejects a `--name` that is not a JSON object at flag-parsing time."""
    def check(text):
        try:
            json_object(text, name)
        except app.UsageError as e:
            raise flags.ValidationError(str(e)) from None
        return True
    flags.register_validator(name, check, flag_values=flag_values)


def quiet_unless_verbose(flag_values=flags.FLAGS):
    """TensorFlow's Python INFO/WARNING chatter (through absl) buries the progress bars: keep it
    for an explicit --verbosity. (Its C++ logging is silenced in tflm_kws/__init__.py, before
    TensorFlow loads.)"""
    if not flag_values["verbosity"].present:
        logging.set_verbosity(logging.ERROR)
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.get_logger().setLevel("ERROR")  # "Assets written to ..." on every Keras save
