"""Model zoo: each model is a function of its hyper-parameters returning the training form.

`build(name, input_shape, num_classes, **hparams)` builds one by name. Every model takes features
of shape (frames, channels, 1) (micro_speech: (49, 40, 1)), returns logits from a final
`Dense(num_classes)` with no activation, and uses only layers whose deploy form TFLM runs
(Conv2D, DepthwiseConv2D, Dense, Reshape/Flatten, AveragePooling2D, ReLU, Add, ZeroPadding2D,
Dropout; Rep layers, SubSpectralNorm and BatchNormalization disappear in
`tflm_kws.reparameterize`). Deploy sizes: `describe()` and docs/models.md.
"""
import inspect

from tflm_kws.models.anchors import ds_cnn, tiny_conv
from tflm_kws.models.bc_resnet import bc_resnet
from tflm_kws.models.rep_inceptionnext import rep_inceptionnext
from tflm_kws.models.repcnn import cnn, repcnn

MODELS = {
    "repcnn": repcnn,
    "cnn": cnn,
    "rep_inceptionnext": rep_inceptionnext,
    "bc_resnet": bc_resnet,
    "ds_cnn": ds_cnn,
    "tiny_conv": tiny_conv,
}


def build(name, input_shape=(49, 40, 1), num_classes=12, **hparams):
    """The training form of model `name`; unknown names or hyper-parameters raise ValueError."""
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; valid models: {', '.join(sorted(MODELS))}")
    builder = MODELS[name]
    accepted = set(inspect.signature(builder).parameters) - {"input_shape", "num_classes"}
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise ValueError(f"model '{name}' has no hyper-parameter(s) {unknown}; its "
                         f"hyper-parameters are {sorted(accepted)}")
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, **hparams)


from tflm_kws.models.summary import describe, markdown_table  # noqa: E402  (uses build)
