"""Parameters and multiply-accumulates of a plain (deploy) Keras graph, computed from its shapes.

MACs per layer, from the layer's output shape (batch excluded):
  Conv2D           out_h * out_w * out_channels * kh * kw * in_channels / groups
  DepthwiseConv2D  out_h * out_w * out_channels * kh * kw
  Dense            output elements * input features
  AveragePooling2D / MaxPooling2D   output elements * pool_h * pool_w (one accumulate per window tap)
  GlobalAveragePooling2D / GlobalMaxPooling2D   input elements
Shape-only and element-wise layers (Reshape, Flatten, ZeroPadding2D, Dropout, ReLU, Activation,
Add, ...) count 0.
Any other layer with weights (a Rep layer, BatchNormalization) is an error: pass the deploy graph,
`tflm_kws.reparameterize(model)`.
"""
import numpy as np
import tf_keras as keras

_NO_MACS = (keras.layers.InputLayer, keras.layers.Reshape, keras.layers.Flatten,
            keras.layers.Dropout, keras.layers.ReLU, keras.layers.Activation, keras.layers.Softmax,
            keras.layers.Add, keras.layers.ZeroPadding2D)


def _elements(shape):
    dims = shape[1:]
    if any(d is None for d in dims):
        raise ValueError(f"shape {shape} is not fully known")
    return int(np.prod(dims))


def _layer_macs(layer):
    if isinstance(layer, keras.Model):
        return count_params_and_macs(layer)["macs"]
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (a Conv2D subclass: test it first)
        kh, kw = layer.kernel_size
        return _elements(layer.output_shape) * kh * kw
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        return _elements(layer.output_shape) * kh * kw * layer.input_shape[-1] // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return _elements(layer.output_shape) * layer.input_shape[-1]
    if isinstance(layer, (keras.layers.AveragePooling2D, keras.layers.MaxPooling2D)):
        return _elements(layer.output_shape) * int(np.prod(layer.pool_size))
    if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)):
        return _elements(layer.input_shape)
    if isinstance(layer, _NO_MACS):
        return 0
    raise ValueError(f"count_params_and_macs: layer '{layer.name}' ({type(layer).__name__}) is "
                     f"not part of a plain deploy graph; pass tflm_kws.reparameterize(model)")


def count_params_and_macs(model):
    """{"params": int, "macs": int} of a built plain graph (one inference, batch 1)."""
    if not model.built:
        raise ValueError(f"model '{model.name}' is not built")
    return {"params": int(model.count_params()),
            "macs": int(sum(_layer_macs(layer) for layer in model.layers))}
