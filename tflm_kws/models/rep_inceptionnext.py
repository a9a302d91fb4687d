"""AudioRepInceptionNeXt's block (arXiv 2404.13551) scaled for a microcontroller.

The 49 x 40 feature map is kept 2-D (time x frequency). A RepConv2D stem (5 x 5, ACNet-style
branches 5x5 / 1x5 / 5x1, stride 2 in time and 4 in frequency) makes a 25 x 10 map of `channels`;
then each block is
    1x1 RepConv2D (channels -> hidden, linear)
    -> RepDepthwiseConv2D, multi-scale temporal (k,1) branches + identity -> ReLU
    -> RepDepthwiseConv2D, multi-scale frequency (1,k) branches + identity -> ReLU
    -> 1x1 RepConv2D (hidden -> channels) -> ReLU
and every Rep layer fuses into one plain conv. The paper's blocks end in a residual addition; here
the block ends in a ReLU instead (an ADD would cost an extra int8 requantization per block, and
without some non-linearity consecutive blocks' 1x1 convs would compose linearly). Frequency
kernels are 7/5/3 rather than the paper's 21/11/3 because the map is 10 bins wide. The defaults
fill the same MAC budget as `repcnn` (<= 1.0 M).
"""
import tf_keras as keras

from tflm_kws.layers import RepConv2D, RepDepthwiseConv2D, same_padding
from tflm_kws.models.common import check_input, check_rate, classifier_head, kernel_pair


def _freq_same_padding(x, kernel, stride, name):
    """ZeroPadding2D giving a conv with padding 'valid' TensorFlow's 'same' padding along
    frequency only (none in time), or x itself when there is none to add."""
    before, after = same_padding(int(x.shape[2]), kernel, stride)
    if before == after == 0:
        return x
    return keras.layers.ZeroPadding2D(((0, 0), (before, after)), name=name)(x)


def rep_inceptionnext(input_shape=(49, 40, 1), num_classes=12, channels=16, hidden=32,
                      num_blocks=2, stem_strides=(2, 4), time_kernels=(7, 5, 3),
                      freq_kernels=(7, 5, 3), identity=True, num_copies=1, time_padding="same",
                      dropout=0.1):
    """AudioRepInceptionNeXt-style model (see the module docstring).

    Deploy graph at the defaults: 3,788 params, 840,192 MACs.

    Args:
      channels: channels between blocks; hidden: channels inside a block (the depthwise width).
      num_blocks: how many blocks.
      stem_strides: (time, frequency) stride of the stem.
      time_kernels / freq_kernels: the multi-scale depthwise branch lengths (the largest is the
        deploy kernel).
      identity: identity branch in the depthwise layers.
      num_copies: K copies of every conv branch (MobileOne), all Rep layers.
      time_padding: "same", or "valid": no padding in time (frequency keeps 'same' padding, as
        ZeroPadding2D before each conv), so the model streams exactly (`tflm_kws.streaming`).
      dropout: before the final Dense.
    """
    name = "rep_inceptionnext"
    check_input(name, input_shape, num_classes)
    check_rate(name, dropout)
    for what, value in (("channels", channels), ("hidden", hidden), ("num_blocks", num_blocks)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"model '{name}': {what} must be an int >= 1, got {value!r}")
    time_kernels, freq_kernels = [int(k) for k in time_kernels], [int(k) for k in freq_kernels]
    if not time_kernels or not freq_kernels:
        raise ValueError(f"model '{name}': time_kernels and freq_kernels must not be empty")
    if time_padding not in ("same", "valid"):
        raise ValueError(f"model '{name}': time_padding must be 'same' or 'valid', got "
                         f"{time_padding!r}")
    valid = time_padding == "valid"
    stem_strides = kernel_pair(stem_strides, "stem_strides")
    inputs = keras.Input(input_shape, name="features")
    x = _freq_same_padding(inputs, 5, stem_strides[1], "stem_pad") if valid else inputs
    x = RepConv2D(channels, (5, 5), strides=stem_strides, padding=time_padding,
                  branches=[(5, 5), (1, 5), (5, 1)], activation="relu", num_copies=num_copies,
                  name="stem")(x)
    for i in range(1, num_blocks + 1):
        x = RepConv2D(hidden, 1, num_copies=num_copies, name=f"block{i}_expand")(x)
        if valid and x.shape[1] < max(time_kernels):
            raise ValueError(f"model '{name}': with time_padding 'valid', block{i} gets "
                             f"{x.shape[1]} frames, fewer than its time kernel "
                             f"{max(time_kernels)}")
        x = RepDepthwiseConv2D((max(time_kernels), 1), branches=[(k, 1) for k in time_kernels],
                               identity=identity, activation="relu", num_copies=num_copies,
                               padding=time_padding, name=f"block{i}_time")(x)
        if valid:
            x = _freq_same_padding(x, max(freq_kernels), 1, f"block{i}_freq_pad")
        x = RepDepthwiseConv2D((1, max(freq_kernels)), branches=[(1, k) for k in freq_kernels],
                               identity=identity, activation="relu", num_copies=num_copies,
                               padding=time_padding, name=f"block{i}_freq")(x)
        x = RepConv2D(channels, 1, activation="relu", num_copies=num_copies,
                      name=f"block{i}_project")(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)
