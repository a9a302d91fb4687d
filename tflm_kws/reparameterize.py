"""Turns a trained multi-branch model into the plain graph that ships, and checks that it is exact.

`reparameterize(model)` rewrites the model's config and rebuilds it with weights:
  - every `RepConv2D` / `RepDepthwiseConv2D` becomes its plain `Conv2D` / `DepthwiseConv2D` with
    bias (and the same activation), same name; every `SubSpectralNorm` its 1x1 `DepthwiseConv2D`
    (a per-(frequency, channel) affine);
  - a conv (plain, or a Rep layer with no activation) whose output goes only into a
    BatchNormalization over its channels is merged with it (BN folded into kernel and bias; the BN
    disappears and whatever consumed it consumes the conv);
  - every other layer is copied with its weights; nested Sequential/Functional models recurse.
The result holds only builtin Keras layers, so tfmot and the TFLite converter need no custom code.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tflm_kws import fusion
from tflm_kws.io_utils import atomic_save_keras
from tflm_kws.layers import RepConv2D, RepDepthwiseConv2D, SubSpectralNorm

_CONV_CLASSES = ("Conv2D", "DepthwiseConv2D")


def _entry_name(entry):
    return entry.get("name") or entry["config"]["name"]


def _is_plain_conv(entry):
    return (entry["class_name"] in _CONV_CLASSES and entry.get("module") == "keras.layers"
            and entry["config"].get("activation") == "linear"
            and entry["config"].get("data_format", "channels_last") == "channels_last")


def _is_channel_batch_norm(entry):
    if entry["class_name"] != "BatchNormalization" or entry.get("module") != "keras.layers":
        return False
    axis = entry["config"]["axis"]
    axis = axis if isinstance(axis, (list, tuple)) else [axis]
    return list(axis) in ([-1], [3])


def _plain_entry(layer, entry):
    """(entry, weights) of the builtin-only replacement of `layer` (its serialized `entry`)."""
    if isinstance(layer, (RepConv2D, RepDepthwiseConv2D, SubSpectralNorm)):
        new = dict(keras.layers.serialize(layer.deploy_layer()))
        weights = list(layer.fused_kernel_and_bias())
    elif isinstance(layer, keras.Model):
        fused = reparameterize(layer)
        new = dict(keras.layers.serialize(fused))
        weights = fused.get_weights()
    else:
        return entry, layer.get_weights()
    for key in ("name", "inbound_nodes"):  # Functional wiring stays as it was.
        if key in entry:
            new[key] = entry[key]
    return new, weights


def _fold_into(conv_entry, conv_weights, bn_layer):
    """Folds `bn_layer` into the conv: returns the conv's new entry (with bias) and weights."""
    bias = conv_weights[1] if len(conv_weights) > 1 else None
    kernel, bias = fusion.fold_batch_norm(
        conv_weights[0], bias, None if bn_layer.gamma is None else bn_layer.gamma.numpy(),
        None if bn_layer.beta is None else bn_layer.beta.numpy(), bn_layer.moving_mean.numpy(),
        bn_layer.moving_variance.numpy(), bn_layer.epsilon,
        depthwise=conv_entry["class_name"] == "DepthwiseConv2D")
    entry = dict(conv_entry, config=dict(conv_entry["config"], use_bias=True))
    entry.pop("build_config", None)
    return entry, [kernel.astype(np.float32), bias.astype(np.float32)]


def _references(node_data):
    """Yields every [layer_name, node_index, tensor_index, ...] reference inside inbound-node data."""
    if isinstance(node_data, list):
        if (len(node_data) >= 3 and isinstance(node_data[0], str)
                and isinstance(node_data[1], int) and isinstance(node_data[2], int)):
            yield node_data
        else:
            for item in node_data:
                yield from _references(item)
    elif isinstance(node_data, dict):
        for item in node_data.values():
            yield from _references(item)


def _fold_sequential(entries, weights, model):
    out = []
    for entry in entries:
        previous = out[-1] if out else None
        if (previous is not None and _is_channel_batch_norm(entry) and _is_plain_conv(previous)):
            name = _entry_name(previous)
            out[-1], weights[name] = _fold_into(previous, weights.pop(name),
                                                model.get_layer(_entry_name(entry)))
            weights.pop(_entry_name(entry))
            continue
        out.append(entry)
    return out


def _fold_functional(config, weights, model):
    entries = config["layers"]
    by_name = {_entry_name(e): e for e in entries}
    consumers = {}  # layer name -> how many times its outputs are used (inputs of layers, outputs)
    for entry in entries:
        for ref in _references(entry["inbound_nodes"]):
            consumers[ref[0]] = consumers.get(ref[0], 0) + 1
    for ref in _references(config["output_layers"]):
        consumers[ref[0]] = consumers.get(ref[0], 0) + 1
    renamed = {}  # folded BN name -> conv name
    for entry in entries:
        if not _is_channel_batch_norm(entry) or len(entry["inbound_nodes"]) != 1:
            continue
        refs = list(_references(entry["inbound_nodes"]))
        if len(refs) != 1:
            continue
        conv = by_name[refs[0][0]]
        if (_is_plain_conv(conv) and len(conv["inbound_nodes"]) == 1
                and consumers.get(_entry_name(conv)) == 1):
            name = _entry_name(conv)
            by_name[name], weights[name] = _fold_into(conv, weights[name],
                                                      model.get_layer(_entry_name(entry)))
            weights.pop(_entry_name(entry))
            renamed[_entry_name(entry)] = name
    kept = [by_name[_entry_name(e)] for e in entries if _entry_name(e) not in renamed]
    for entry in kept:
        for ref in _references(entry["inbound_nodes"]):
            ref[0] = renamed.get(ref[0], ref[0])
    for ref in _references(config["output_layers"]):
        ref[0] = renamed.get(ref[0], ref[0])
    config["layers"] = kept
    return config


def reparameterize(model):
    """Returns the plain deploy twin of `model` (a built Sequential or Functional model)."""
    if not model.built:
        raise ValueError(f"model '{model.name}' is not built; give it an input shape first")
    config = model.get_config()
    sequential = isinstance(model, keras.Sequential)
    if not sequential and not ("input_layers" in config and "output_layers" in config):
        raise ValueError(f"model '{model.name}' is a subclassed model; reparameterize needs a "
                         f"Sequential or Functional model")
    weights = {}
    entries = []
    for entry in config["layers"]:
        name = _entry_name(entry)
        if entry["class_name"] == "InputLayer":
            entries.append(entry)
            continue
        entry, weights[name] = _plain_entry(model.get_layer(name), entry)
        entries.append(entry)
    config["layers"] = entries
    if sequential:
        config["layers"] = _fold_sequential(entries, weights, model)
        fused = keras.Sequential.from_config(config)
    else:
        fused = keras.Model.from_config(_fold_functional(config, weights, model))
    for name, layer_weights in weights.items():
        fused.get_layer(name).set_weights(layer_weights)
    return fused


def _outputs(model, inputs):
    return [np.asarray(t) for t in tf.nest.flatten(model(inputs, training=False))]


def fusion_error(model, fused, inputs):
    """(max |fused - model|, max |model|) over `inputs`, both models in inference mode."""
    reference, candidate = _outputs(model, inputs), _outputs(fused, inputs)
    diff = max(float(np.max(np.abs(r - c))) for r, c in zip(reference, candidate))
    scale = max(float(np.max(np.abs(r))) for r in reference)
    return diff, scale


def _split(batch):
    return (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)


def _batches(data, batch_size=256):
    """Yields (x, y) batches from a tf.data.Dataset of (x, y[, w]) or an (x, y) tuple of arrays."""
    if isinstance(data, tf.data.Dataset):
        for batch in data:
            yield _split(batch)
        return
    x, y = _split(data)
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], None if y is None else y[start:start + batch_size]


def accuracy(model, data):
    """Top-1 accuracy of a logits model on (x, y) data (sparse or one-hot labels)."""
    correct = total = 0
    for x, y in _batches(data):
        predicted = np.argmax(np.asarray(model(x, training=False)), axis=-1)
        y = np.asarray(y)
        if y.ndim == predicted.ndim + 1:
            y = np.argmax(y, axis=-1)
        correct += int(np.sum(predicted == y.reshape(predicted.shape)))
        total += predicted.size
    if total == 0:
        raise ValueError("validation data is empty")
    return correct / total


class RepFuseCallback(keras.callbacks.Callback):
    """Fuses the model being trained, verifies the fused model, and saves it.

    At the end of training (and, with every_n_epochs=N > 0, after every N-th epoch) it builds
    `reparameterize(model)`, checks max|fused - model| <= atol_rel * max|model| on a probe batch in
    inference mode and raises RuntimeError if not. The probe batch is `probe_batch`, else the first
    batch of `validation_data`, else a seeded random-normal batch of the model's input shape. After
    an N-th epoch with validation_data it adds the fused model's accuracy to the epoch logs as
    `fused_val_accuracy` (list this callback before loggers such as TensorBoard/CSVLogger so they
    see it). At the end of training the fused model is saved atomically to `save_path` (if given).
    Attributes: `fused_model`, `fusion_error` ((max abs diff, max abs output) of the last check).
    """

    def __init__(self, validation_data=None, probe_batch=None, save_path=None, every_n_epochs=0,
                 atol_rel=1e-5):
        super().__init__()
        if not isinstance(every_n_epochs, int) or every_n_epochs < 0:
            raise ValueError(f"every_n_epochs must be an int >= 0, got {every_n_epochs!r}")
        if not atol_rel > 0:
            raise ValueError(f"atol_rel must be > 0, got {atol_rel!r}")
        self.validation_data = validation_data
        self.probe_batch = probe_batch
        self.save_path = save_path
        self.every_n_epochs = every_n_epochs
        self.atol_rel = atol_rel
        self.fused_model = None
        self.fusion_error = None

    def _probe(self):
        if self.probe_batch is not None:
            return np.asarray(self.probe_batch, np.float32)
        if self.validation_data is not None:
            return np.asarray(next(iter(_batches(self.validation_data)))[0], np.float32)
        shape = self.model.input_shape
        if any(d is None for d in shape[1:]):
            raise ValueError(f"RepFuseCallback: model input shape {shape} is not fully known; "
                             f"pass probe_batch or validation_data")
        return np.random.default_rng(0).normal(size=(8,) + tuple(shape[1:])).astype(np.float32)

    def fuse(self):
        """Builds, verifies and returns the fused model (also kept as `fused_model`)."""
        fused = reparameterize(self.model)
        diff, scale = fusion_error(self.model, fused, self._probe())
        self.fusion_error = (diff, scale)
        if not diff <= self.atol_rel * scale:
            raise RuntimeError(f"fused model differs from the multi-branch model '{self.model.name}'"
                               f": max |diff| {diff:.3g} > {self.atol_rel:g} * max |output| "
                               f"{scale:.3g}")
        self.fused_model = fused
        return fused

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            fused = self.fuse()
            if self.validation_data is not None and logs is not None:
                logs["fused_val_accuracy"] = accuracy(fused, self.validation_data)

    def on_train_end(self, logs=None):
        fused = self.fuse()
        if self.save_path:
            atomic_save_keras(fused, self.save_path)
