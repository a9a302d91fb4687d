"""RepCNN (arXiv 2406.02652) for 49 x 40 micro_speech features, and its uni-branch twin `cnn`.

Design (the paper's exact layer table is not public). Time is the conv axis and the 40 mel
channels are the input channels: (49, 40, 1) is reshaped to (49, 1, 40), so every conv is a
temporal (k, 1) conv over all channels at once, which is what RepCNN's temporal 7/5/3/1 kernels
are. Four conv layers of `channels` each, the second with temporal stride 2 (receptive field
7 + 6 + 12 + 12 = 37 frames, about 0.75 s), ReLU after each, then an average over time and a
Dense layer. 30 channels keep the deploy graph under the project's budget (<= 30 k parameters,
<= 1.0 M MACs); the first layer at the full 49 frames and the last three at 25 spend most of the
MAC budget where the parameter budget allows. In the training form every conv is a RepConv2D with
branches (7,1)/(5,1)/(3,1)/(1,1), two copies of each (MobileOne K=2; see `num_copies`), each with
its BatchNorm, and an identity branch wherever input
and output shapes match (stride 1, same channel count: layers 3 and 4); fused, each is one plain
(7,1) Conv2D with bias -- exactly the graph `cnn` trains directly.
"""
import tf_keras as keras

from tflm_kws.layers import RepConv2D
from tflm_kws.models.common import check_input, check_rate, classifier_head, kernel_pair

_TEMPORAL_BRANCHES = ((7, 1), (5, 1), (3, 1), (1, 1))


def _check(name, channels, strides, padding):
    if padding not in ("same", "valid"):
        raise ValueError(f"model '{name}': padding must be 'same' or 'valid', got {padding!r}")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"model '{name}': channels must be an int >= 1, got {channels!r}")
    if not strides or any(not isinstance(s, int) or s < 1 for s in strides):
        raise ValueError(f"model '{name}': strides must be a non-empty list of ints >= 1 (one "
                         f"per conv layer), got {strides!r}")


def _temporal_stack(name, input_shape, num_classes, channels, strides, kernel_size, padding,
                    dropout, make_conv):
    check_input(name, input_shape, num_classes)
    check_rate(name, dropout)
    strides = list(strides)
    _check(name, channels, strides, padding)
    frames, bins, depth = input_shape
    inputs = keras.Input(input_shape, name="features")
    x = keras.layers.Reshape((frames, 1, bins * depth), name="time_major")(inputs)
    for i, stride in enumerate(strides):
        if padding == "valid" and x.shape[1] < kernel_size[0]:
            raise ValueError(f"model '{name}': with padding 'valid', conv{i + 1} gets "
                             f"{x.shape[1]} frames, fewer than its kernel ({kernel_size[0]})")
        x = make_conv(i, int(x.shape[-1]), stride)(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)


def repcnn(input_shape=(49, 40, 1), num_classes=12, channels=30, strides=(1, 2, 1, 1),
           kernel_size=(7, 1), padding="same", branches=_TEMPORAL_BRANCHES, identity=True,
           num_copies=2, expansion=None, dropout=0.1):
    """RepCNN training form: temporal RepConv2D stack (see the module docstring).

    Deploy graph at the defaults: 27,792 params, 885,210 MACs.

    Args:
      channels: conv channels of every layer.
      strides: temporal stride of each conv layer (its length is the depth).
      kernel_size: the fused (deploy) kernel; every branch must fit in it, centred.
      padding: "same", or "valid": no padding in time, so the output on a window depends on its
        frames only and the model streams exactly (`tflm_kws.streaming`; 49 frames -> 43, 19, 13,
        7 at the defaults, 607,470 MACs).
      branches: branch kernel sizes of every RepConv2D.
      identity: add the identity branch wherever shapes allow (stride 1, channels unchanged).
      num_copies: K copies of every branch (MobileOne). Default 2, chosen by the
        over-parameterization study (bench/overparam_study.md) as the architecture change best on
        validation (85.0 % vs 83.5 % for K=1; relative validation error reduction vs the twin
        +22.9 % vs +15.1 %); on the test split it gave +32.1 % (K=1: +29.0 %). K=4 was no better
        and costs 3x the training time of K=2.
      expansion: None or r: linear 1x1 -> kxk -> 1x1 branches of width r*channels (ExpandNets).
      dropout: before the final Dense.
    """
    kernel_size = kernel_pair(kernel_size, "kernel_size")
    branches = [kernel_pair(b, "every entry of branches") for b in branches]

    def make_conv(i, in_channels, stride):
        return RepConv2D(channels, kernel_size, strides=(stride, 1), padding=padding,
                         branches=branches, activation="relu", num_copies=num_copies,
                         expansion=expansion, name=f"conv{i + 1}",
                         identity=identity and stride == 1 and in_channels == channels)

    return _temporal_stack("repcnn", input_shape, num_classes, channels, strides, kernel_size,
                           padding, dropout, make_conv)


def cnn(input_shape=(49, 40, 1), num_classes=12, channels=30, strides=(1, 2, 1, 1),
        kernel_size=(7, 1), padding="same", dropout=0.1):
    """The uni-branch twin of `repcnn`: exactly its deploy graph (plain Conv2D with bias), trained
    directly. Takes repcnn's hyper-parameters less the training-form ones (branches, identity,
    num_copies, expansion), so one set of values builds the same deploy graph on both sides.

    Deploy graph at the defaults: 27,792 params, 885,210 MACs.
    """
    kernel_size = kernel_pair(kernel_size, "kernel_size")

    def make_conv(i, in_channels, stride):
        return keras.layers.Conv2D(channels, kernel_size, strides=(stride, 1), padding=padding,
                                   activation="relu", name=f"conv{i + 1}")

    return _temporal_stack("cnn", input_shape, num_classes, channels, strides, kernel_size,
                           padding, dropout, make_conv)
