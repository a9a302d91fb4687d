"""AudioRepInceptionNeXt (arXiv 2404.13551) for a microcontroller: two layouts of its block.

layout="freq_channels" (the default). As in `repcnn`, the 49 x 40 map is reshaped to (49, 1, 40):
time is the only conv axis and the 40 mel bins are the input channels. A RepConv2D stem (5/3/1
temporal branches, stride 2 in time) maps them to `channels`; then each block is the paper's

    x -> RepDepthwiseConv2D, multi-scale temporal (k,1) branches + identity (one fused (K,1)
         depthwise conv; no activation)
      -> MLP: 1x1 RepConv2D (channels -> mlp_ratio x channels) -> ReLU
              -> 1x1 RepConv2D (-> channels, linear)
      -> + x   (the residual connection)

and the classifier averages over time. Departures from the paper, each forced by the layout or by
the M4 and measured in docs/models.md: the block has one temporal depthwise conv where the paper
has a frequency (1xk) one then a temporal (kx1) one -- with frequency as channels, frequency is
mixed by the stem and the MLP's 1x1 convs instead (at full width, which the 2-D layout's
frequency kernels cannot afford); ReLU instead of GELU (TFLM int8 has no fused GELU); BatchNorm
inside every Rep branch (folded at deploy) instead of the paper's single BN before the MLP.
Why this layout: on CMSIS-NN a 1x1 or (k,1) conv over many channels runs at 0.3-0.5 MACs per
instruction, a 2-D map's 7x1 / 1x7 depthwise convs with few channels at ~0.07.

layout="time_freq": the earlier 2-D form, kept as the measured alternative. The map stays
time x frequency; a RepConv2D stem (5 x 5, ACNet-style branches 5x5 / 1x5 / 5x1, stride 2 in time
and 4 in frequency) makes a 25 x 10 map of `channels`; each block is
    1x1 RepConv2D (channels -> hidden, linear)
    -> RepDepthwiseConv2D, multi-scale temporal (k,1) branches + identity -> ReLU
    -> RepDepthwiseConv2D, multi-scale frequency (1,k) branches + identity -> ReLU
    -> 1x1 RepConv2D (hidden -> channels) -> ReLU
ending in a ReLU, not a residual addition, with frequency kernels 7/5/3 (the map is 10 bins
wide) rather than the paper's 21/11/3.

Every Rep layer fuses into one plain conv; multi_branch=False trains the same deploy graph
directly (one branch per conv, no identity: the ablation's twin).
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


LAYOUTS = ("freq_channels", "time_freq")


def rep_inceptionnext(input_shape=(49, 40, 1), num_classes=12, layout="freq_channels",
                      channels=40, mlp_ratio=2, hidden=32, num_blocks=3, stem_strides=(2, 1),
                      stem_kernels=(5, 3, 1), time_kernels=(9, 5, 3), freq_kernels=(7, 5, 3),
                      identity=True, num_copies=1, multi_branch=True, time_padding="same",
                      dropout=0.1):
    """AudioRepInceptionNeXt (see the module docstring).

    Deploy graph at the defaults: 29,292 params, 708,480 MACs.

    The defaults (freq_channels, 40 channels, 3 blocks) fit repcnn's M4 budget: 2.79 M
    instructions per inference against its 2.73 M (`python -m tflm_kws.shape_cost`,
    docs/models.md).

    Args:
      layout: "freq_channels" (the paper's block, frequency as channels) or "time_freq" (2-D).
      channels: channels between blocks.
      mlp_ratio: (freq_channels) the MLP's expansion: its hidden width is mlp_ratio x channels.
      hidden: (time_freq) channels inside a block (the depthwise width).
      num_blocks: how many blocks.
      stem_strides: (time, frequency) stride of the stem (frequency: time_freq only).
      stem_kernels: (freq_channels) the stem's temporal branch lengths (the largest is deployed).
      time_kernels / freq_kernels: the multi-scale depthwise branch lengths (the largest is the
        deploy kernel; freq_kernels: time_freq only).
      identity: identity branch in the depthwise layers.
      num_copies: K copies of every conv branch (MobileOne), all Rep layers.
      multi_branch: False trains the deploy graph directly (largest kernel only, no identity, one
        copy): the ablation's twin.
      time_padding: "same", or "valid": no padding in time (time_freq only: frequency keeps
        'same' padding, as ZeroPadding2D before each conv), so the model streams exactly
        (`tflm_kws.streaming`); the residual additions of freq_channels do not stream.
      dropout: before the final Dense.
    """
    name = "rep_inceptionnext"
    check_input(name, input_shape, num_classes)
    check_rate(name, dropout)
    if layout not in LAYOUTS:
        raise ValueError(f"model '{name}': layout must be one of {list(LAYOUTS)}, got {layout!r}")
    for what, value in (("channels", channels), ("hidden", hidden), ("num_blocks", num_blocks),
                        ("mlp_ratio", mlp_ratio)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"model '{name}': {what} must be an int >= 1, got {value!r}")
    if not multi_branch:
        time_kernels, freq_kernels = [max(time_kernels)], [max(freq_kernels)]
        stem_kernels, identity, num_copies = [max(stem_kernels)], False, 1
    if layout == "freq_channels":
        return _freq_channels(name, input_shape, num_classes, channels, mlp_ratio, num_blocks,
                              kernel_pair(stem_strides, "stem_strides")[0],
                              [int(k) for k in stem_kernels], [int(k) for k in time_kernels],
                              identity, num_copies, time_padding, dropout)
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
                  branches=[(5, 5), (1, 5), (5, 1)] if multi_branch else [(5, 5)],
                  activation="relu", num_copies=num_copies, name="stem")(x)
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


def _freq_channels(name, input_shape, num_classes, channels, mlp_ratio, num_blocks, stem_stride,
                   stem_kernels, time_kernels, identity, num_copies, time_padding, dropout):
    if time_padding != "same":
        raise ValueError(f"model '{name}': layout 'freq_channels' has residual additions, which "
                         f"do not stream; time_padding must be 'same', got {time_padding!r}")
    if not stem_kernels or not time_kernels:
        raise ValueError(f"model '{name}': stem_kernels and time_kernels must not be empty")
    frames, bins, depth = input_shape
    inputs = keras.Input(input_shape, name="features")
    x = keras.layers.Reshape((frames, 1, bins * depth), name="time_major")(inputs)
    x = RepConv2D(channels, (max(stem_kernels), 1), strides=(stem_stride, 1),
                  branches=[(k, 1) for k in stem_kernels], activation="relu",
                  num_copies=num_copies, name="stem")(x)
    for i in range(1, num_blocks + 1):
        y = RepDepthwiseConv2D((max(time_kernels), 1), branches=[(k, 1) for k in time_kernels],
                               identity=identity, num_copies=num_copies, name=f"block{i}_time")(x)
        y = RepConv2D(mlp_ratio * channels, 1, activation="relu", num_copies=num_copies,
                      name=f"block{i}_expand")(y)
        y = RepConv2D(channels, 1, num_copies=num_copies, name=f"block{i}_project")(y)
        x = keras.layers.Add(name=f"block{i}_residual")([x, y])
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)
