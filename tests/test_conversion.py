"""QAT, int8 conversion and TFLM checks on small hand-built plain graphs (49 x 40 x 1 input)."""
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tflm_kws import evaluate
from tflm_kws import export
from tflm_kws import quantize
from tflm_kws import seeding

L = keras.layers
SHAPE = (49, 40, 1)


def _features(n, seed=0):
    return np.random.default_rng(seed).integers(-128, 128, (n, 49, 40)).astype(np.int8)


def _small_model(depth_multiplier=1, batch_size=None):
    """Conv (no bias) + BatchNorm + ReLU layer, depthwise + Activation, 1x1 conv, pool, dense."""
    inputs = keras.Input(SHAPE, batch_size=batch_size)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=depth_multiplier, name="dw")(x)
    x = L.Activation("relu", name="dw_relu")(x)
    x = L.Conv2D(8, 1, activation="relu", name="pw")(x)
    x = L.AveragePooling2D((25, 20), name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(1)
    model.get_layer("bn").set_weights([rng.uniform(0.5, 2, 8), rng.normal(size=8),
                                       0.1 * rng.normal(size=8), rng.uniform(0.5, 2, 8)])
    return model


def _tensors_of(tflite_bytes, op_name):
    ops, tensors = export.ops_details(tflite_bytes)
    return [(op, tensors) for op in ops if op["op_name"] == op_name]


def test_fold_for_quantization_keeps_outputs_and_removes_bn_relu():
    model = _small_model()
    folded = quantize.fold_for_quantization(model)
    names = [layer.name for layer in folded.layers]
    assert "bn" not in names and "relu" not in names and "dw_relu" not in names
    assert folded.get_layer("conv").get_config()["activation"] == "relu"
    x = _features(4).astype(np.float32)[..., None] / 128
    np.testing.assert_allclose(folded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_qat_depthwise_per_channel_matches_converter_weights():
    model = _small_model(depth_multiplier=2)
    qat = quantize.quantize_model(model)
    x = _features(32).astype(np.float32)[..., None] / 128
    y = np.arange(32) % 3
    qat.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, batch_size=16, epochs=1, verbose=0)
    tflite_bytes = export.convert_int8(qat, _features(20, seed=3))
    export.check_deployable(tflite_bytes, qat)
    export.check_input_quantization(tflite_bytes, 1 / 128)
    # Pools keep their input's scale: no requantizing QUANTIZE op after them.
    assert "QUANTIZE" not in export.op_names(tflite_bytes)

    ((op, tensors),) = _tensors_of(tflite_bytes, "DEPTHWISE_CONV_2D")
    weights = tensors[op["inputs"][1]]
    q = weights["quantization_parameters"]
    assert len(q["scales"]) == 16 and q["quantized_dimension"] == 3  # in (8) * multiplier (2)
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
    int8_weights = interpreter.get_tensor(weights["index"]).astype(np.float32)
    deployed = (int8_weights * q["scales"])[0]  # [kh, kw, in * mult]
    trained = quantize.fake_quant_depthwise_kernel(qat, "dw").reshape(3, 3, 16)
    np.testing.assert_array_equal(deployed, trained)

    conv_ops = _tensors_of(tflite_bytes, "CONV_2D")
    for op, tensors in conv_ops:
        assert len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"]) == 8
    ((op, tensors),) = _tensors_of(tflite_bytes, "FULLY_CONNECTED")
    assert len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"]) == 1


def test_tfmot_default_depthwise_is_per_tensor_ours_is_not():
    """Documents tensorflow/model-optimization#808, the reason for the custom QuantizeConfig."""
    import tensorflow_model_optimization as tfmot
    model = _small_model()
    default_qat = tfmot.quantization.keras.quantize_model(quantize.fold_for_quantization(model))
    ours = quantize.quantize_model(model)

    def range_shape(qat):
        layer = qat.get_layer("quant_dw")
        ((_, _, quantizer_vars),) = layer._weight_vars  # pylint: disable=protected-access
        return tuple(quantizer_vars["min_var"].shape)
    assert range_shape(default_qat) == (1,)   # multiplier axis: one range for all channels
    assert range_shape(ours) == (8,)


def test_fixed_batch_conversion_has_only_compute_ops():
    tflite_bytes = export.convert_int8(_small_model(), _features(10))
    ops = export.op_names(tflite_bytes)
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(ops)
    assert set(ops) <= set(export.TFLM_OPS)


def test_tflm_outputs_identical_to_tflite_reference():
    tflite_bytes = export.convert_int8(_small_model(), _features(30))
    clips = _features(25, seed=7)
    ref = evaluate.run_tflite(tflite_bytes, clips, "tflite_ref")
    tflm = evaluate.run_tflite(tflite_bytes, clips, "tflm")
    assert ref.dtype == np.int8 and ref.shape == (25, 3)
    np.testing.assert_array_equal(tflm, ref)
    used = export.tflm_arena_used_bytes(tflite_bytes)
    # Activations alone: 25 x 20 x 8 int8 in and out of the depthwise conv.
    assert 2 * 25 * 20 * 8 < used < 1 << 20
    assert export.recommended_arena_bytes(used, 0) % 16 == 0


def test_int8_input_is_the_int8_feature():
    tflite_bytes = export.convert_int8(_small_model(), _features(10))
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
    (detail,) = interpreter.get_input_details()
    clips = _features(3)
    np.testing.assert_array_equal(evaluate.quantize_input(clips, detail), clips[..., None])


def test_op_tflm_lacks_is_named_with_its_layer():
    inputs = keras.Input(SHAPE)
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.Activation("gelu", name="gelu_activation")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(3)(x))
    tflite_bytes = export.convert_int8(model, _features(10))
    with pytest.raises(export.DeployError, match=r"GELU \(from Keras layer 'gelu_activation'\)"):
        export.check_deployable(tflite_bytes, model)
    with pytest.raises(export.DeployError, match="GELU"):
        export.tflm_interpreter(tflite_bytes, arena_size=100_000)


def test_float_op_is_rejected():
    inputs = keras.Input(SHAPE)
    x = L.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = L.Lambda(lambda t: tf.math.cumsum(t, axis=2), name="running_sum")(x)
    x = L.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, L.Dense(3)(x))
    tflite_bytes = export.convert_int8(model, _features(10))
    with pytest.raises(export.DeployError, match=r"DEQUANTIZE .*float tensors"):
        export.check_deployable(tflite_bytes, model)


def test_calibration_sets_activation_ranges_to_the_observed_min_max():
    # tfmot starts activation ranges at [-6, 6]; a short QAT barely moves them (EMA 0.999).
    rng = np.random.default_rng(0)
    inputs = keras.Input((49, 40, 1))
    hidden = keras.layers.Conv2D(4, (3, 3), activation="relu", name="conv")(inputs)
    logits = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, logits)
    x = rng.integers(-128, 128, size=(64, 49, 40, 1)).astype(np.float32) / 128
    qat = quantize.quantize_model(model)
    ranges = {v.name.split(":")[0]: v for v in qat.variables}
    assert float(ranges["quant_conv/post_activation_max"].numpy()) == 6.0
    quantize.calibrate_activation_ranges(qat, x)
    conv_out = keras.Model(inputs, hidden)(x).numpy()
    np.testing.assert_allclose(ranges["quant_conv/post_activation_max"].numpy(), conv_out.max(),
                               rtol=0.02)  # fake-quantized weights move the output slightly
    assert float(ranges["quant_conv/post_activation_min"].numpy()) == 0.0
    assert float(ranges["quant_logits/post_activation_max"].numpy()) != 6.0


# --- The checks that stand between a wrong model and the board, each with a model that fails it. ---

def test_tflm_runtime_really_is_tflite_micro():
    """'tflm' runs TFLite Micro's interpreter: it refuses an op that TFLite runs and TFLM lacks."""
    inputs = keras.Input(SHAPE)
    x = L.Conv2D(4, 3, padding="same")(inputs)
    x = L.Activation("gelu", name="gelu_activation")(x)
    model = keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    gelu_bytes = export.convert_int8(model, _features(10))
    assert evaluate.run_tflite(gelu_bytes, _features(2), "tflite_ref").shape == (2, 3)
    with pytest.raises(export.DeployError, match="GELU"):
        evaluate.make_runner(gelu_bytes, "tflm")
    from tflite_micro.python.tflite_micro import runtime  # pylint: disable=import-outside-toplevel
    runner = evaluate.make_runner(export.convert_int8(_small_model(), _features(10)), "tflm")
    assert isinstance(runner.interpreter, runtime.Interpreter)


FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "speech_commands_mini"


@pytest.fixture(scope="module")
def real_clip_model(tmp_path_factory):
    """A small float model trained on the real clips of the fixture, and those clips' features."""
    from tflm_kws import data as kws_data, frontend  # pylint: disable=import-outside-toplevel
    spec = kws_data.DataSpec(data_dir=str(FIXTURE), wanted_words=["yes", "no"], augment_variants=0)
    dataset = kws_data.load(spec, frontend.FrontendConfig(), str(tmp_path_factory.mktemp("cache")))
    splits = [dataset.features(s) for s in ("training", "validation", "testing")]
    seeding.set_seed(0)
    inputs = keras.Input(SHAPE)
    x = L.Conv2D(8, (5, 3), strides=2, padding="same", activation="relu")(inputs)
    x = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    model = keras.Model(inputs, L.Dense(len(dataset.labels))(L.GlobalAveragePooling2D()(x)))
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x_train, y_train = splits[0]
    model.fit(frontend.features_to_model_input(x_train), y_train, epochs=40, batch_size=8,
              verbose=0)
    return model, x_train, np.concatenate([x for x, _ in splits])


def test_int8_logits_follow_the_float_model_on_real_clips(real_clip_model):
    """Calibrated on real features, the int8 model's logits are the float model's within a few
    percent and it predicts the same class (a badly calibrated one is ~90 % off)."""
    from tflm_kws import frontend  # pylint: disable=import-outside-toplevel
    model, x_train, clips = real_clip_model
    tflite_bytes = export.convert_int8(model, x_train)
    float_logits = model.predict(frontend.features_to_model_input(clips), verbose=0)
    runner = evaluate.make_runner(tflite_bytes, "tflm")
    int8_logits = evaluate.dequantize_output(evaluate.run_tflite(tflite_bytes, clips, "tflm"),
                                             runner.output_detail)
    relative = np.abs(int8_logits - float_logits).max(1) / np.abs(float_logits).max(1)
    assert np.median(relative) < 0.05 and relative.max() < 0.15, relative
    assert np.mean(int8_logits.argmax(1) == float_logits.argmax(1)) >= 0.9


def test_input_quantization_check_rejects_what_the_device_would_misread(monkeypatch):
    model = _small_model()
    good = export.convert_int8(model, _features(10))
    export.check_input_quantization(good, 1 / 128)
    with pytest.raises(export.DeployError, match="expected int8 scale 0.015625"):
        export.check_input_quantization(good, 1 / 64)
    # Representative inputs spanning half the feature range: input scale 1/256, not 1/128.
    real = export.representative_inputs
    monkeypatch.setattr(export, "representative_inputs", lambda *a, **k: real(*a, **k) / 2)
    halved = export.convert_int8(model, _features(10))
    with pytest.raises(export.DeployError, match="scale 0.0039"):
        export.check_input_quantization(halved, 1 / 128)


def test_per_channel_fully_connected_is_rejected(monkeypatch):
    """The Arduino library's FULLY_CONNECTED reads one weight scale: per-channel weights fail."""
    real = tf.lite.TFLiteConverter.from_concrete_functions

    def per_channel_dense(*args, **kwargs):
        converter = real(*args, **kwargs)
        original_convert = converter.convert

        def convert():
            # pylint: disable-next=protected-access
            converter._experimental_disable_per_channel_quantization_for_dense_layers = False
            return original_convert()
        converter.convert = convert
        return converter
    model = _small_model()
    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", per_channel_dense)
    tflite_bytes = export.convert_int8(model, _features(10))
    ((op, tensors),) = _tensors_of(tflite_bytes, "FULLY_CONNECTED")
    assert len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"]) == 3
    with pytest.raises(export.DeployError,
                       match=r"FULLY_CONNECTED \(from Keras layer 'logits'\): per-channel"):
        export.check_deployable(tflite_bytes, model)


def test_cmsis_nn_scratch_follows_each_kernel():
    """Each op's scratch is what CMSIS-NN's get_buffer_size (ARM_MATH_DSP) returns for its shape,
    and the arena written for the board covers the largest."""
    inputs = keras.Input(SHAPE)
    x = L.Conv2D(8, (5, 3), strides=2, padding="same", activation="relu", name="c53")(inputs)
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="c33")(x)      # c_in 8
    x = L.Conv2D(12, 1, activation="relu", name="pw")(x)                        # 1x1 fast: 0
    x = L.Conv2D(12, 1, strides=2, activation="relu", name="pw_s2")(x)          # strided 1x1
    x = L.DepthwiseConv2D((3, 1), padding="same", name="dw")(x)                 # c_in == c_out
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw_x2")(x)  # 12 -> 24
    x = L.AveragePooling2D((7, 5), name="pool")(x)                              # 13x10 -> 1x2
    model = keras.Model(inputs, L.Dense(3, name="logits")(L.Flatten()(x)))
    tflite_bytes = export.convert_int8(model, _features(10))
    per_op = [(name, size) for _, name, size in export.cmsis_nn_scratch_per_op(tflite_bytes)]
    assert per_op == [("CONV_2D", 2 * 1 * 5 * 3 * 2), ("CONV_2D", 2 * 8 * 3 * 3 * 2),
                      ("CONV_2D", 0), ("CONV_2D", 2 * 12 * 1 * 1 * 2),
                      ("DEPTHWISE_CONV_2D", 12 * 3 * 1 * 2), ("DEPTHWISE_CONV_2D", 0),
                      ("AVERAGE_POOL_2D", 24 * 4)]
    assert export.cmsis_nn_scratch_bytes(tflite_bytes) == 2 * 8 * 3 * 3 * 2
    used = export.tflm_arena_used_bytes(tflite_bytes)
    arena = export.recommended_arena_bytes(used, export.cmsis_nn_scratch_bytes(tflite_bytes))
    assert arena >= used + 288 and arena % 16 == 0
    # The arena written for the board covers what TFLM uses plus the scratch, with headroom.
    assert export.recommended_arena_bytes(5000, 3000) >= 5000 + 3000 + 512
