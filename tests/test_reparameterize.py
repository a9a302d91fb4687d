"""reparameterize(model) and RepFuseCallback."""
import importlib

import numpy as np
import pytest
import tf_keras as keras

from tflm_kws import RepConv2D, RepDepthwiseConv2D, RepFuseCallback, reparameterize
from test_layers import randomize_batch_norms

INPUT_SHAPE = (24, 8, 3)
# The package attribute tflm_kws.reparameterize is the function (the contract's API); the module:
reparameterize_module = importlib.import_module("tflm_kws.reparameterize")


def _functional(rep):
    """The same graph in training form (rep=True) or as its plain deploy twin (rep=False)."""
    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Conv2D(6, 3, use_bias=True, name="stem")(inputs)
    if rep:
        x = keras.layers.BatchNormalization(name="stem_bn")(x)  # folded: conv feeds only the BN
    x = keras.layers.ReLU()(x)
    if rep:
        x = RepConv2D(6, (5, 3), branches=[(5, 3), (3, 3), (1, 3), (1, 1)], identity=True,
                      num_copies=2, expansion=2.0, activation="relu", name="rep1")(x)
        x = RepDepthwiseConv2D((3, 3), strides=2, depth_multiplier=2, branches=[(3, 3), (1, 1)],
                               name="rep2")(x)
    else:
        x = keras.layers.Conv2D(6, (5, 3), padding="same", activation="relu", name="rep1")(x)
        x = keras.layers.DepthwiseConv2D((3, 3), strides=2, padding="same", depth_multiplier=2,
                                         name="rep2")(x)
    if rep:  # a Rep layer without activation followed by BN folds too
        x = keras.layers.BatchNormalization(name="rep2_bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.AveragePooling2D(pool_size=(x.shape[1], x.shape[2]))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x))


def _max_rel_diff(model, fused, x):
    multi = model(x, training=False).numpy()
    return float(np.max(np.abs(fused(x, training=False).numpy() - multi)) / np.max(np.abs(multi)))


def _layer_classes(model):
    return {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}


def test_functional_fuses_exactly_to_builtin_layers():
    rng = np.random.default_rng(0)
    model = _functional(rep=True)
    randomize_batch_norms(model, rng)
    fused = reparameterize(model)
    classes = _layer_classes(fused)
    assert not classes & {"RepConv2D", "RepDepthwiseConv2D", "BatchNormalization"}, classes
    assert all(type(layer).__module__.startswith("tf_keras.") for layer in fused.layers)
    plain = _functional(rep=False)
    assert fused.count_params() == plain.count_params()
    assert [(type(a).__name__, a.output_shape) for a in fused.layers] == [
        (type(b).__name__, b.output_shape) for b in plain.layers]
    x = rng.normal(size=(4,) + INPUT_SHAPE).astype(np.float32)
    assert _max_rel_diff(model, fused, x) <= 1e-5


def test_sequential_fuses_exactly():
    rng = np.random.default_rng(1)
    model = keras.Sequential([
        keras.Input(INPUT_SHAPE),
        RepConv2D(4, 3, branches=[3, 1], activation="relu"),
        keras.layers.DepthwiseConv2D(3, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        RepConv2D(4, 3, branches=[(3, 3), (1, 3), (3, 1)], identity=True),
        keras.layers.BatchNormalization(),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    randomize_batch_norms(model, rng)
    fused = reparameterize(model)
    assert isinstance(fused, keras.Sequential)
    assert not _layer_classes(fused) & {"RepConv2D", "BatchNormalization"}
    assert [type(layer).__name__ for layer in fused.layers] == [
        "Conv2D", "DepthwiseConv2D", "ReLU", "Conv2D", "Flatten", "Dense"]
    x = rng.normal(size=(3,) + INPUT_SHAPE).astype(np.float32)
    assert _max_rel_diff(model, fused, x) <= 1e-5


def test_batch_norm_not_folded_when_it_would_change_the_function():
    rng = np.random.default_rng(2)
    inputs = keras.Input(INPUT_SHAPE)
    a = keras.layers.Conv2D(3, 3, activation="relu", name="relu_conv")(inputs)
    a = keras.layers.BatchNormalization(name="after_relu")(a)  # after a ReLU: not foldable
    b = keras.layers.Conv2D(3, 3, name="shared_conv")(inputs)
    c = keras.layers.BatchNormalization(name="one_of_two")(b)  # conv also feeds the Add
    out = keras.layers.Add()([a, b, c])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(out)))
    randomize_batch_norms(model, rng)
    fused = reparameterize(model)
    assert {layer.name for layer in fused.layers} >= {"after_relu", "one_of_two"}
    x = rng.normal(size=(2,) + INPUT_SHAPE).astype(np.float32)
    assert _max_rel_diff(model, fused, x) <= 1e-5


def test_nested_model_is_reparameterized():
    rng = np.random.default_rng(3)
    inner = keras.Sequential([keras.Input(INPUT_SHAPE), RepConv2D(4, 3, branches=[3, 1]),
                              keras.layers.BatchNormalization()], name="inner")
    inputs = keras.Input(INPUT_SHAPE)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inner(inputs))))
    randomize_batch_norms(model, rng)
    fused = reparameterize(model)
    assert not _layer_classes(fused) & {"RepConv2D", "BatchNormalization"}
    x = rng.normal(size=(2,) + INPUT_SHAPE).astype(np.float32)
    assert _max_rel_diff(model, fused, x) <= 1e-5


def test_save_load_then_fuse_equals_fuse(tmp_path):
    rng = np.random.default_rng(4)
    model = _functional(rep=True)
    randomize_batch_norms(model, rng)
    model.save(tmp_path / "train_model.keras")
    loaded = keras.models.load_model(tmp_path / "train_model.keras")
    direct, via_file = reparameterize(model), reparameterize(loaded)
    for a, b in zip(direct.get_weights(), via_file.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = rng.normal(size=(2,) + INPUT_SHAPE).astype(np.float32)
    np.testing.assert_array_equal(direct(x).numpy(), via_file(x).numpy())


def test_unbuilt_and_subclassed_models_are_rejected():
    with pytest.raises(ValueError, match="not built"):
        reparameterize(keras.Sequential([RepConv2D(2, 3)], name="lazy"))

    class Custom(keras.Model):
        def __init__(self):
            super().__init__(name="custom")
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    custom = Custom()
    custom(np.zeros((1,) + INPUT_SHAPE, np.float32))
    with pytest.raises(ValueError, match="'custom' is a subclassed model"):
        reparameterize(custom)


def _data(rng, n=32):
    x = rng.normal(size=(n,) + INPUT_SHAPE).astype(np.float32)
    return x, rng.integers(0, 5, size=n).astype(np.int32)


def test_fuse_callback_logs_verifies_and_saves(tmp_path):
    rng = np.random.default_rng(5)
    model = _functional(rep=True)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    (x, y), validation = _data(rng), _data(rng, 16)
    path = tmp_path / "out" / "fused.keras"
    callback = RepFuseCallback(validation_data=validation, save_path=str(path), every_n_epochs=1)
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=validation,
                        callbacks=[callback], verbose=0)
    assert len(history.history["fused_val_accuracy"]) == 2
    # Fused and multi-branch models agree, so their validation accuracies do too.
    np.testing.assert_allclose(history.history["fused_val_accuracy"][-1],
                               history.history["val_accuracy"][-1])
    diff, scale = callback.fusion_error
    assert diff <= 1e-5 * scale
    saved = keras.models.load_model(path, compile=False)  # plain layers: loads without our classes
    assert not _layer_classes(saved) & {"RepConv2D", "RepDepthwiseConv2D", "BatchNormalization"}
    np.testing.assert_array_equal(saved(validation[0]).numpy(),
                                  callback.fused_model(validation[0]).numpy())
    assert [p.name for p in path.parent.iterdir()] == ["fused.keras"]  # no temp file left


def test_fuse_callback_fuses_every_n_th_epoch_only():
    rng = np.random.default_rng(7)
    model = _functional(rep=True)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    (x, y), validation = _data(rng), _data(rng, 16)
    callback = RepFuseCallback(validation_data=validation, every_n_epochs=2)
    seen = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch + 1, "fused_val_accuracy" in logs))
    model.fit(x, y, batch_size=8, epochs=5, callbacks=[callback, Recorder()], verbose=0)
    assert seen == [(1, False), (2, True), (3, False), (4, True), (5, False)]
    assert callback.fused_model is not None  # and once more at the end of training


def test_fuse_callback_raises_when_fused_model_differs(tmp_path, monkeypatch):
    rng = np.random.default_rng(6)
    model = _functional(rep=True)
    model.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    real = reparameterize_module.reparameterize

    def off_by_a_bit(m):
        fused = real(m)
        layer = fused.get_layer("rep1")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * 1.01, bias])
        return fused

    monkeypatch.setattr(reparameterize_module, "reparameterize", off_by_a_bit)
    x, y = _data(rng)
    path = tmp_path / "fused.keras"
    with pytest.raises(RuntimeError, match="differs from the multi-branch model"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[RepFuseCallback(probe_batch=x[:4], save_path=str(path))])
    assert not path.exists()
