"""Small helpers the model definitions share."""
import numbers

import tf_keras as keras


def kernel_pair(value, what):
    """(h, w) from an int or a 2-sequence (JSON hyper-parameters arrive as lists)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        pair = ()
    if len(pair) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {value!r}")
    return pair


def check_input(name, input_shape, num_classes):
    if len(input_shape) != 3 or any(not isinstance(d, int) or d < 1 for d in input_shape):
        raise ValueError(f"model '{name}': input_shape must be (frames, channels, 1) with known "
                         f"positive sizes, got {input_shape!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"model '{name}': num_classes must be an int >= 2, got {num_classes!r}")


def check_rate(name, value, what="dropout"):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"model '{name}': {what} must be in [0, 1), got {value!r}")


def bn_relu(x, name):
    """BatchNormalization (`<name>_bn`, folded into the conv before it at deploy) then ReLU."""
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def classifier_head(x, num_classes, dropout):
    """Average over the whole feature map -> Flatten -> Dropout -> Dense logits.

    A full-size AveragePooling2D (AVERAGE_POOL_2D, which TFLM's CMSIS-NN kernels implement for
    int8) rather than GlobalAveragePooling2D (MEAN, reference kernel only).
    """
    x = keras.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(num_classes, name="logits")(x)
