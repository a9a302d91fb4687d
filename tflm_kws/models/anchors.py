"""The anchors most users know: TFLM micro_speech's tiny_conv and MLPerf Tiny's DS-CNN."""
import tf_keras as keras

from tflm_kws.models.common import bn_relu, check_input, check_rate, classifier_head, kernel_pair


def tiny_conv(input_shape=(49, 40, 1), num_classes=12, dropout=0.5):
    """TFLM micro_speech's `tiny_conv` (tensorflow/examples/speech_commands/models.py):
    Conv2D 8 filters, 10 x 8 (time x frequency), stride 2 x 2, 'same', bias, ReLU, dropout, Dense.

    Deploy graph at the defaults: 48,660 params, 368,000 MACs.
    """
    check_input("tiny_conv", input_shape, num_classes)
    check_rate("tiny_conv", dropout)
    inputs = keras.Input(input_shape, name="features")
    x = keras.layers.Conv2D(8, (10, 8), strides=(2, 2), padding="same", activation="relu",
                            name="conv")(inputs)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name="tiny_conv")


def ds_cnn(input_shape=(49, 40, 1), num_classes=12, filters=64, num_blocks=4,
           first_kernel_size=(10, 4), first_strides=(2, 2), dropout=0.2, final_dropout=0.4):
    """MLPerf Tiny keyword-spotting reference DS-CNN (mlcommons/tiny, keras_model.py): Conv2D
    10 x 4 stride 2 x 2 with 64 filters + BN + ReLU + dropout; 4 x [DepthwiseConv2D 3 x 3 + BN + ReLU,
    Conv2D 1 x 1 64 + BN + ReLU]; dropout; average pool over the whole map; Dense. MLPerf feeds it
    49 x 10 MFCCs (about 2.7 M MACs); on this project's 49 x 40 features the map is 4x wider, and so
    is the cost. Every BN folds into its conv in `tflm_kws.reparameterize`. (MLPerf's own pool is
    (24, 5) on a 25 x 5 map; here the pool covers the whole map.)

    Deploy graph at the defaults: 22,604 params, 10,656,768 MACs.
    """
    check_input("ds_cnn", input_shape, num_classes)
    check_rate("ds_cnn", dropout)
    check_rate("ds_cnn", final_dropout, "final_dropout")
    if not isinstance(filters, int) or filters < 1 or not isinstance(num_blocks, int) or \
            num_blocks < 0:
        raise ValueError(f"model 'ds_cnn': filters must be an int >= 1 and num_blocks an int "
                         f">= 0, got {filters!r}, {num_blocks!r}")

    inputs = keras.Input(input_shape, name="features")
    x = keras.layers.Conv2D(filters, kernel_pair(first_kernel_size, "first_kernel_size"),
                            strides=kernel_pair(first_strides, "first_strides"), padding="same",
                            name="conv")(inputs)
    x = bn_relu(x, "conv")
    if dropout:
        x = keras.layers.Dropout(dropout, name="conv_dropout")(x)
    for i in range(1, num_blocks + 1):
        x = keras.layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}")(x)
        x = bn_relu(x, f"dw{i}")
        x = keras.layers.Conv2D(filters, 1, name=f"pw{i}")(x)
        x = bn_relu(x, f"pw{i}")
    return keras.Model(inputs, classifier_head(x, num_classes, final_dropout), name="ds_cnn")
