"""tflm_kws: Keras -> TensorFlow Lite Micro keyword spotting with re-parameterizable convolutions."""
import os

# tensorflow-model-optimization needs Keras 2 (tf_keras). This is the one place the switch is set;
# every entry point imports tflm_kws before TensorFlow is loaded.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tflm_kws.layers import RepConv2D, RepDepthwiseConv2D  # noqa: E402
from tflm_kws.reparameterize import RepFuseCallback, reparameterize  # noqa: E402
