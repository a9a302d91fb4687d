"""Quantization-aware training of the fused plain graph with tensorflow-model-optimization.

What is trained is what the TFLite converter deploys:
- Conv2D weights: per output channel (tfmot's default, last kernel axis).
- DepthwiseConv2D weights: per channel of the flattened depthwise output (in_channels * multiplier),
  which is how the converter stores them ([1, kh, kw, in * mult], quantized_dimension 3). tfmot's
  default depthwise quantizer keeps one range per *last* kernel axis entry (the multiplier, usually
  1), i.e. it trains a per-tensor range (tensorflow/model-optimization#808); `DepthwisePerChannelQuantizeConfig`
  fixes that.
- Dense weights: per tensor (tfmot's default). The export asks the converter for per-tensor dense
  weights too: the Feb-2023 Arduino TFLM FULLY_CONNECTED kernel reads a single filter scale.
- Model input: fixed range [-1, 127/128] (scale 1/128, zero point 0), so an int8 feature from the
  device's feature provider is the model's int8 input unchanged (see `tflm_kws.frontend`).
"""
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
# tfmot's fake-quant ops (not exported); quantizers look MovingAvgQuantize up at call time.
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops as _quant_ops

from tflm_kws import frontend

_quantizers = tfmot.quantization.keras.quantizers

# Input range that maps int8 feature v to the model's int8 input v (scale 1/128, zero point 0).
INPUT_MIN = -128 * frontend.FEATURE_SCALE
INPUT_MAX = 127 * frontend.FEATURE_SCALE

_WEIGHT_LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
_FOLDABLE_ACTIVATIONS = ("relu", "relu6")


class DepthwisePerChannelWeightsQuantizer(_quantizers.LastValueQuantizer):
    """8-bit symmetric narrow-range weights, one range per depthwise output channel.

    The Keras depthwise kernel [kh, kw, in, mult] is viewed as [kh, kw, 1, in * mult] (channel
    index c = i * mult + m, the converter's layout) and fake-quantized along that last axis.
    """

    def __init__(self):
        super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

    def build(self, tensor_shape, name, layer):
        channels = int(tensor_shape[2]) * int(tensor_shape[3])
        min_var = layer.add_weight(name + "_min", shape=(channels,),
                                   initializer=keras.initializers.Constant(-6.0), trainable=False)
        max_var = layer.add_weight(name + "_max", shape=(channels,),
                                   initializer=keras.initializers.Constant(6.0), trainable=False)
        return {"min_var": min_var, "max_var": max_var}

    def __call__(self, inputs, training, weights, **kwargs):
        kh, kw, cin, mult = inputs.shape
        flat = tf.reshape(inputs, [kh, kw, 1, cin * mult])
        quantized = super().__call__(flat, training, weights, **kwargs)
        return tf.reshape(quantized, [kh, kw, cin, mult])

    def get_config(self):
        return {}

    def __eq__(self, other):
        return isinstance(other, DepthwisePerChannelWeightsQuantizer)

    def __ne__(self, other):
        return not self.__eq__(other)


class DepthwisePerChannelQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """DepthwiseConv2D: per-channel weights; output after the activation like tfmot's default."""

    def __init__(self):
        self.weight_quantizer = DepthwisePerChannelWeightsQuantizer()
        self.activation_quantizer = _quantizers.MovingAverageQuantizer(
            num_bits=8, per_axis=False, symmetric=False, narrow_range=False)

    def get_weights_and_quantizers(self, layer):
        return [(layer.depthwise_kernel, self.weight_quantizer)]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, self.activation_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        (kernel,) = quantize_weights
        if kernel.shape != layer.depthwise_kernel.shape:
            raise ValueError(f"layer {layer.name}: quantized depthwise kernel shape {kernel.shape} "
                             f"!= {layer.depthwise_kernel.shape}")
        layer.depthwise_kernel = kernel

    def set_quantize_activations(self, layer, quantize_activations):
        (layer.activation,) = quantize_activations

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class SameScaleQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """No fake quantization: for ops whose int8 kernels keep the input scale (average/max pool).

    TFLite's int8 AVERAGE_POOL_2D and MAX_POOL_2D require output scale == input scale; a separately
    trained output range (tfmot's default for pooling) makes the converter add a QUANTIZE op after
    the pool to rescale. Without it the pool simply inherits its input's range.
    """

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def quantize_scope():
    """tfmot's quantize_scope plus this module's quantizer and config (for load/clone)."""
    return tfmot.quantization.keras.quantize_scope({
        "DepthwisePerChannelWeightsQuantizer": DepthwisePerChannelWeightsQuantizer,
        "DepthwisePerChannelQuantizeConfig": DepthwisePerChannelQuantizeConfig,
        "SameScaleQuantizeConfig": SameScaleQuantizeConfig,
    })


def _activation_name(layer):
    """'relu' / 'relu6' when `layer` is a standalone activation that can fold into its producer."""
    if isinstance(layer, keras.layers.ReLU):
        cfg = layer.get_config()
        if cfg.get("negative_slope", 0.0) == 0.0 and cfg.get("threshold", 0.0) == 0.0:
            if cfg.get("max_value") is None:
                return "relu"
            if float(cfg["max_value"]) == 6.0:
                return "relu6"
        return None
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        name = name if isinstance(name, str) else None
        return name if name in _FOLDABLE_ACTIVATIONS else None
    return None


def fold_for_quantization(model):
    """Folds BatchNormalization and standalone ReLU/ReLU6 layers into the preceding weight layer.

    tfmot's 8-bit layout transforms turn off weight fake-quantization of a Conv/Dense followed by
    a BatchNormalization or a ReLU layer (only the output is quantized), so QAT would not see the
    weight rounding the converter applies. With the activation inside the layer and BatchNorm
    folded, every weight layer trains with the int8 weights it is deployed with. A model with
    nothing to fold is returned unchanged (same object).
    """
    layers_by_name = {layer.name: layer for layer in model.layers}
    consumers = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:  # pylint: disable=protected-access
            for inbound in tf.nest.flatten(node.inbound_layers):
                consumers.setdefault(inbound.name, []).append(layer.name)
    output_names = {name for name, _, _ in model.get_config()["output_layers"]}

    fold_into = {}   # folded layer name -> producer name
    weights = {}     # producer name -> new weights
    activations = {}  # producer name -> activation name
    for layer in model.layers:
        inbound = [l for node in layer._inbound_nodes  # pylint: disable=protected-access
                   for l in tf.nest.flatten(node.inbound_layers)]
        if len(inbound) != 1 or len(layer._inbound_nodes) != 1:  # pylint: disable=protected-access
            continue
        producer = inbound[0]
        root = fold_into.get(producer.name, producer.name)
        root_layer = layers_by_name[root]
        if (not isinstance(root_layer, _WEIGHT_LAYERS)
                or consumers.get(producer.name) != [layer.name]):
            continue
        if producer.name in output_names:
            continue
        current_activation = activations.get(
            root, keras.activations.serialize(root_layer.activation))
        if isinstance(layer, keras.layers.BatchNormalization):
            if current_activation != "linear" or not _folds_batchnorm(root_layer, layer):
                continue
            weights[root] = _fold_batchnorm(root_layer, weights.get(root), layer)
            fold_into[layer.name] = root
        elif _activation_name(layer) and current_activation == "linear":
            activations[root] = _activation_name(layer)
            fold_into[layer.name] = root
    if not fold_into:
        return model

    config = model.get_config()
    kept = []
    for layer_config in config["layers"]:
        name = layer_config["config"]["name"]
        if name in fold_into:
            continue
        if name in activations:
            layer_config["config"]["activation"] = activations[name]
        if name in weights and not layer_config["config"].get("use_bias", True):
            layer_config["config"]["use_bias"] = True
        kept.append(layer_config)
    config["layers"] = kept

    def rename(obj):
        if isinstance(obj, list):
            if obj and isinstance(obj[0], str) and obj[0] in fold_into:
                return [fold_into[obj[0]]] + [rename(o) for o in obj[1:]]
            return [rename(o) for o in obj]
        if isinstance(obj, dict):
            return {k: rename(v) for k, v in obj.items()}
        return obj

    for layer_config in config["layers"]:
        layer_config["inbound_nodes"] = rename(layer_config["inbound_nodes"])
    config["output_layers"] = rename(config["output_layers"])
    folded = keras.Model.from_config(config)
    for layer in folded.layers:
        source = layers_by_name[layer.name]
        layer.set_weights(weights[layer.name] if layer.name in weights else source.get_weights())
    return folded


def _folds_batchnorm(weight_layer, bn):
    axis = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    return list(axis) in ([-1], [len(bn.input_shape) - 1])


def _fold_batchnorm(layer, current, bn):
    """Kernel and bias of `layer` with the inference-mode BatchNorm `bn` folded in."""
    params = current if current is not None else layer.get_weights()
    kernel = params[0]
    bias = params[1] if len(params) > 1 else np.zeros(_output_channels(layer, kernel), np.float32)
    gamma = bn.gamma.numpy() if bn.gamma is not None else 1.0
    beta = bn.beta.numpy() if bn.beta is not None else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, cin, mult = kernel.shape
        kernel = (kernel.reshape(kh, kw, cin * mult) * scale).reshape(kh, kw, cin, mult)
    else:
        kernel = kernel * scale
    bias = (bias - bn.moving_mean.numpy()) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def _output_channels(layer, kernel):
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return kernel.shape[2] * kernel.shape[3]
    return kernel.shape[-1]


def annotate(model):
    """Annotates every layer for tfmot: DepthwiseConv2D per channel, pools same-scale, rest default."""
    def annotate_depthwise(layer):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return tfmot.quantization.keras.quantize_annotate_layer(
                layer, quantize_config=DepthwisePerChannelQuantizeConfig())
        if isinstance(layer, (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D)):
            return tfmot.quantization.keras.quantize_annotate_layer(
                layer, quantize_config=SameScaleQuantizeConfig())
        return layer.__class__.from_config(layer.get_config())
    depthwise_annotated = keras.models.clone_model(model, clone_function=annotate_depthwise)
    # quantize_annotate_model keeps existing annotations and annotates the rest with defaults.
    return tfmot.quantization.keras.quantize_annotate_model(depthwise_annotated)


def quantize_model(fused_model):
    """The fused float model as a tfmot QAT model (fake-quant weights and activations).

    Weights are copied from `fused_model` (after folding BatchNorm / ReLU layers). The input
    quantizer is pinned to [INPUT_MIN, INPUT_MAX]; it only widens on values outside that range,
    which model inputs (int8 / 128) never have.
    """
    folded = fold_for_quantization(fused_model)
    annotated = annotate(folded)
    annotated.set_weights(folded.get_weights())
    with quantize_scope():
        qat = tfmot.quantization.keras.quantize_apply(annotated)
    _pin_input_range(qat)
    _check_weights_fake_quantized(qat)
    return qat


def _pin_input_range(qat_model):
    pinned = 0
    for layer in qat_model.layers:
        # tfmot does not export QuantizeLayer; quantize_apply puts one after the input.
        if type(layer).__name__ == "QuantizeLayer" and isinstance(
                layer.quantizer, _quantizers.AllValuesQuantizer):
            layer.quantizer_vars["min_var"].assign(INPUT_MIN)
            layer.quantizer_vars["max_var"].assign(INPUT_MAX)
            pinned += 1
    if pinned != 1:
        raise ValueError(f"expected one input QuantizeLayer in the QAT model, found {pinned}")


def _check_weights_fake_quantized(qat_model):
    """Every Conv2D / DepthwiseConv2D / Dense must train with fake-quantized weights."""
    wrapper_cls = tfmot.quantization.keras.QuantizeWrapperV2
    for layer in qat_model.layers:
        inner = layer.layer if isinstance(layer, wrapper_cls) else layer
        if not isinstance(inner, _WEIGHT_LAYERS):
            continue
        if (not isinstance(layer, wrapper_cls)
                or not layer.quantize_config.get_weights_and_quantizers(inner)):
            raise ValueError(f"layer {inner.name} ({type(inner).__name__}) has no weight "
                             "fake-quantization in the QAT model")


def calibrate_activation_ranges(qat_model, calibration_inputs):
    """Sets every moving-average activation range to its min / max over `calibration_inputs`.

    tfmot starts each activation range at [-6, 6] and moves it by an EMA with decay 0.999 per
    training step; the few hundred steps of a short QAT on a keyword-spotting set leave the ranges
    mostly where they started (0.999^72 = 0.93 after 3 epochs of 24 steps), far from the real
    ones, and the int8 model ends up worse than post-training quantization. One training-mode pass
    with decay 0 puts each range where the converter's calibration would, and the QAT's EMA then
    only refines it.
    """
    original = _quant_ops.MovingAvgQuantize

    def calibrating(*args, **kwargs):
        kwargs["ema_decay"] = 0.0
        return original(*args, **kwargs)

    _quant_ops.MovingAvgQuantize = calibrating
    try:
        qat_model(tf.convert_to_tensor(calibration_inputs, tf.float32), training=True)
    finally:
        _quant_ops.MovingAvgQuantize = original


def quantization_aware_train(fused_model, train_dataset, validation_dataset=None, epochs=3,
                             learning_rate=1e-4, calibration_inputs=None, verbose=2):
    """QAT fine-tuning of `fused_model` (logits output) for `epochs`; returns the QAT model.

    `train_dataset` yields (float32 [B, 49, 40, 1] model input, int32 [B] label) batches;
    `calibration_inputs` (float32 [N, 49, 40, 1], clean training inputs) set the activation ranges
    before fine-tuning (see `calibrate_activation_ranges`).
    """
    if epochs < 1:
        raise ValueError(f"quantization-aware training needs epochs >= 1, got {epochs}")
    qat = quantize_model(fused_model)
    if calibration_inputs is not None:
        calibrate_activation_ranges(qat, calibration_inputs)
    qat.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    qat.fit(train_dataset, validation_data=validation_dataset, epochs=epochs, verbose=verbose)
    return qat


def fake_quant_depthwise_kernel(qat_model, layer_name):
    """Depthwise kernel of `layer_name` as the QAT model rounds it (inference), [kh, kw, in, mult]."""
    wrapper = qat_model.get_layer(_quantized_name(qat_model, layer_name))
    # _weight_vars holds (kernel variable, quantizer, quantizer variables); after a call the layer
    # attribute itself points at the fake-quantized graph tensor, so use the variable.
    # pylint: disable-next=protected-access
    ((kernel, quantizer, quantizer_vars),) = wrapper._weight_vars
    return quantizer(kernel, False, quantizer_vars).numpy()


def _quantized_name(qat_model, layer_name):
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if layer.name == layer_name or (inner is not None and inner.name == layer_name):
            return layer.name
    raise ValueError(f"no layer {layer_name!r} in the QAT model")

