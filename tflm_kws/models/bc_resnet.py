"""BC-ResNet (Kim et al. 2021, arXiv 2106.04140): broadcasted residual learning with SubSpectralNorm.

Layout: the (frames, mel channels, 1) features are a 2-D map, time along the first axis and
frequency along the second (the paper's (F, T) transposed). Network as the paper's Table 1 and
its reference code, widths scaled by `width` (BC-ResNet-w: base channels 8w):
  conv 5x5, frequency stride 2, 16w channels, BN, ReLU
  4 stages of BC-ResBlocks, [2, 2, 4, 4] blocks, 8w / 12w / 16w / 20w channels, frequency
  stride 2 at the first block of stages 2 and 3, temporal dilation 1 / 2 / 4 / 8
  depthwise 5x5 (no frequency padding: the last 5 bins become 1), 1x1 conv to 32w, BN, ReLU
  average over the whole map, Dense to the classes.
A BC-ResBlock: (transition blocks, where the channel count changes: 1x1 conv + BN + ReLU first)
  f2: 3-tap depthwise conv along frequency (stride), SubSpectralNorm over `sub_bands` bands
  f1: average over frequency -> 3-tap depthwise conv along time (dilated), BN, ReLU -> 1x1 conv
      -> dropout
  out = ReLU(identity (normal blocks only) + f2 + f1 broadcast over frequency).
With 40 mel bins the map's frequency sizes are 20 / 20 / 10 / 5 / 5, all multiples of the paper's
5 sub-bands.

Departures from the paper, for TFLM / CMSIS-NN and 49 x 40 micro_speech features (each a
hyper-parameter, so each can be measured): ReLU instead of swish inside f1 (`f1_activation`;
swish is LOGISTIC + MUL in int8 TFLM, ReLU fuses into the conv); 49 frames instead of 101, so the
temporal receptive field is a smaller share of the clip; dropout `dropout` (paper 0.1, also in f1).

Deploy graph (`tflm_kws.reparameterize`): BatchNorms fold into the conv before them; each
SubSpectralNorm becomes a 1x1 DepthwiseConv2D with bias on the (time, 1, F*C) view (a
per-(frequency, channel) affine, which a conv with frequency-shared weights cannot absorb), between
two RESHAPEs; the broadcast over frequency is an int8 ADD with broadcasting. Ops: CONV_2D,
DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, ADD, RESHAPE, PAD, FULLY_CONNECTED.
"""
import tf_keras as keras

from tflm_kws.layers import SubSpectralNorm
from tflm_kws.models.common import bn_relu, check_input, check_rate, classifier_head

_STAGE_BLOCKS = (2, 2, 4, 4)
_STAGE_WIDTHS = (8, 12, 16, 20)  # x width
_STRIDED_STAGES = (1, 2)  # 0-based: stages 2 and 3 halve the frequency axis
_ACTIVATIONS = ("relu", "swish")


def _conv_bn_relu(x, filters, kernel, name, strides=1):
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    return bn_relu(x, name)


def _sub_spectral_norm(x, sub_bands, name):
    frames, bins, channels = (int(d) if d is not None else -1 for d in x.shape[1:])
    flat = keras.layers.Reshape((frames, 1, bins * channels), name=f"{name}_flatten")(x)
    flat = SubSpectralNorm(bins, sub_bands, name=name)(flat)
    return keras.layers.Reshape((frames, bins, channels), name=f"{name}_unflatten")(flat)


def _bc_res_block(x, channels, frequency_stride, dilation, sub_bands, dropout, f1_activation,
                  name):
    transition = int(x.shape[-1]) != channels or frequency_stride != 1
    if transition:
        x = _conv_bn_relu(x, channels, 1, f"{name}_expand")
    # f2: frequency-wise depthwise conv + SubSpectralNorm.
    f2 = keras.layers.DepthwiseConv2D((1, 3), strides=(1, frequency_stride), padding="same",
                                      use_bias=False, name=f"{name}_f2_dwconv")(x)
    f2 = _sub_spectral_norm(f2, sub_bands, f"{name}_f2_ssn")
    # f1: average over frequency, then temporal depthwise conv and a pointwise conv.
    f1 = keras.layers.AveragePooling2D((1, int(f2.shape[2])), name=f"{name}_f1_pool")(f2)
    f1 = keras.layers.DepthwiseConv2D((3, 1), dilation_rate=(dilation, 1), padding="same",
                                      use_bias=False, name=f"{name}_f1_dwconv")(f1)
    f1 = keras.layers.BatchNormalization(name=f"{name}_f1_bn")(f1)
    f1 = keras.layers.Activation(f1_activation, name=f"{name}_f1_act")(f1)
    f1 = keras.layers.Conv2D(channels, 1, name=f"{name}_f1_pwconv")(f1)
    if dropout:
        f1 = keras.layers.Dropout(dropout, name=f"{name}_f1_dropout")(f1)
    out = f2 if transition else keras.layers.Add(name=f"{name}_residual")([x, f2])
    out = keras.layers.Add(name=f"{name}_broadcast")([out, f1])  # f1 is (time, 1, C)
    return keras.layers.ReLU(name=f"{name}_relu")(out)


def bc_resnet(input_shape=(49, 40, 1), num_classes=12, width=1, sub_bands=5,
              dilations=(1, 2, 4, 8), dropout=0.1, f1_activation="relu"):
    """BC-ResNet-`width` training form (see the module docstring).

    Deploy graph at the defaults: 9,848 params, 1,331,420 MACs. Width 3: 56,016 params,
    7,428,180 MACs (the paper, at 101 x 40 inputs: 9.2 k and 54 k params).

    Args:
      width: the paper's tau; base channels 8 * width (BC-ResNet-1: 8).
      sub_bands: SubSpectralNorm sub-bands (paper 5); every stage's frequency size must split
        into them (1 disables the sub-band split: plain per-channel BN statistics).
      dilations: temporal dilation of each of the 4 stages (paper 1, 2, 4, 8).
      dropout: in every block's f1 and before the final Dense (paper 0.1).
      f1_activation: "relu" (default, fuses into the int8 conv) or "swish" (the paper's).
    """
    name = "bc_resnet"
    check_input(name, input_shape, num_classes)
    check_rate(name, dropout)
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"model '{name}': width must be an int >= 1, got {width!r}")
    dilations = list(dilations)
    if len(dilations) != len(_STAGE_BLOCKS) or any(
            not isinstance(d, int) or d < 1 for d in dilations):
        raise ValueError(f"model '{name}': dilations must be {len(_STAGE_BLOCKS)} ints >= 1 (one "
                         f"per stage), got {dilations!r}")
    if f1_activation not in _ACTIVATIONS:
        raise ValueError(f"model '{name}': f1_activation must be one of {list(_ACTIVATIONS)}, "
                         f"got {f1_activation!r}")
    base = 8 * width
    inputs = keras.Input(input_shape, name="features")
    x = _conv_bn_relu(inputs, 2 * base, 5, "stem", strides=(1, 2))
    for stage, (blocks, stage_width) in enumerate(zip(_STAGE_BLOCKS, _STAGE_WIDTHS)):
        channels = stage_width * width
        for block in range(blocks):
            stride = 2 if stage in _STRIDED_STAGES and block == 0 else 1
            bins = -(-int(x.shape[2]) // stride)
            if bins % sub_bands:
                raise ValueError(f"model '{name}': stage {stage + 1} has {bins} frequency bins, "
                                 f"which do not split into sub_bands={sub_bands} equal bands "
                                 f"(input {input_shape})")
            x = _bc_res_block(x, channels, stride, dilations[stage], sub_bands, dropout,
                              f1_activation, f"stage{stage + 1}_block{block + 1}")
    # Depthwise 5x5 with no frequency padding, as the paper (frequency 5 -> 1).
    kernel_bins = min(5, int(x.shape[2]))
    x = keras.layers.ZeroPadding2D(((2, 2), (0, 0)), name="head_pad")(x)
    x = keras.layers.DepthwiseConv2D((5, kernel_bins), padding="valid", use_bias=False,
                                     name="head_dwconv")(x)
    x = _conv_bn_relu(x, 4 * base, 1, "head")
    return keras.Model(inputs, classifier_head(x, num_classes, dropout),
                       name=f"bc_resnet_{width}")
