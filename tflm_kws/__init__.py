"""tflm_kws: Keras -> TensorFlow Lite Micro keyword spotting with re-parameterizable convolutions."""
import os
import sys

# tensorflow-model-optimization needs Keras 2 (tf_keras). This is the one place the switch is set;
# every entry point imports tflm_kws before TensorFlow is loaded.
os.environ["TF_USE_LEGACY_KERAS"] = "1"


def _verbosity_requested(argv):
    """Whether absl's --verbosity (-v, --v) is on the command line."""
    return any(arg.split("=")[0] in ("--verbosity", "-verbosity", "--v", "-v") for arg in argv[1:])


# TensorFlow's C++ log (CUDA plug-in registration errors on a machine without a GPU, converter
# notes) is set before TensorFlow loads, so here: silent unless --verbosity asks for it, or the
# user set TF_CPP_MIN_LOG_LEVEL. Python-side logging is quietened by tflm_kws.cli.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if _verbosity_requested(sys.argv) else "3")

from tflm_kws.layers import RepConv2D, RepDepthwiseConv2D, SubSpectralNorm  # noqa: E402
from tflm_kws.reparameterize import RepFuseCallback, reparameterize  # noqa: E402
