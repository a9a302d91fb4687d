"""Full-integer int8 TFLite conversion for TFLite Micro, and the checks that the result deploys.

The converter sees a batch-1 concrete function: a dynamic batch makes Reshape/Flatten compute
their shape at run time (SHAPE, STRIDED_SLICE, PACK ops), a fixed one leaves the compute ops only.
"""
import contextlib
import os
import re
import sys
import tempfile

import numpy as np
import tensorflow as tf

# TFLite builtin op -> MicroMutableOpResolver method. Every method exists in the Feb-2023
# Arduino_TensorFlowLite library (tflite-micro-arduino-examples, last sync 2023-02-27) and in
# current TFLM; an op outside this table cannot run on the board, whatever the host runtime says.
TFLM_OPS = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ARG_MAX": "AddArgMax",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "EXPAND_DIMS": "AddExpandDims",
    "FULLY_CONNECTED": "AddFullyConnected",
    "HARD_SWISH": "AddHardSwish",
    "LEAKY_RELU": "AddLeakyRelu",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum",
    "MEAN": "AddMean",
    "MIRROR_PAD": "AddMirrorPad",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
}

_FLOAT_TYPES = (np.float32, np.float16, np.float64)


class DeployError(ValueError):
    """The flatbuffer cannot run as a full-int8 model on TFLM's builtin kernels."""


def input_signature_shape(model):
    """(1, *input shape) of a single-input Keras model."""
    shape = model.input_shape
    if isinstance(shape, list):
        if len(shape) != 1:
            raise ValueError(f"model {model.name} has {len(shape)} inputs; a KWS model has one")
        shape = shape[0]
    if any(d is None for d in shape[1:]):
        raise ValueError(f"model {model.name} input shape {shape} is not fully defined")
    return (1,) + tuple(shape[1:])


def representative_inputs(features_int8, num_samples=200, seed=0):
    """Float model inputs for calibration: `num_samples` training features, as int8 / 128.

    One element of the first sample is set to -128 and one to 127, so the calibrated input range
    is exactly [-1, 127/128] (scale 1/128, zero point 0: int8 feature == int8 model input) while
    the activations still see real speech statistics.
    """
    features_int8 = np.asarray(features_int8)
    if features_int8.dtype != np.int8 or features_int8.ndim != 3 or len(features_int8) == 0:
        raise ValueError("representative features must be a non-empty np.int8 array [N, frames, "
                         f"channels], got {features_int8.dtype} {features_int8.shape}")
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(features_int8))[:num_samples]
    chosen = features_int8[take].copy()
    chosen[0].flat[0] = -128
    chosen[0].flat[1] = 127
    return chosen.astype(np.float32)[..., np.newaxis] / 128.0


def convert_int8(model, representative_features_int8, num_samples=200):
    """Full-integer int8 flatbuffer (int8 input and output) of a Keras model (float or QAT)."""
    shape = input_signature_shape(model)
    inputs = representative_inputs(representative_features_int8, num_samples)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def serve(x):
        return model(x, training=False)

    def dataset():
        for x in inputs:
            yield [x[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()],
                                                                model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # The Feb-2023 Arduino TFLM FULLY_CONNECTED kernel reads one filter scale: keep dense weights
    # per-tensor (conv and depthwise stay per-channel, which every TFLM version supports).
    # pylint: disable-next=protected-access
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return stderr_shown_on_failure(converter.convert)


def ops_details(tflite_bytes):
    """Ops of a flatbuffer: list of dicts (op_name, inputs, outputs, operand/result types)."""
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
    # pylint: disable-next=protected-access
    return interpreter._get_ops_details(), interpreter.get_tensor_details()


def op_names(tflite_bytes):
    """Distinct builtin op names in first-use order."""
    ops, _ = ops_details(tflite_bytes)
    return list(dict.fromkeys(op["op_name"] for op in ops))


def layer_of_tensor(tensor_name, keras_model):
    """Name of the Keras layer a converted tensor came from ('?' when no layer name matches).

    Tensor names are ';'-joined TF op paths such as 'model/quant_conv2d/Relu;model/quant_conv2d/
    BiasAdd'; tfmot prefixes wrapped layers with 'quant_'.
    """
    layer_names = {layer.name for layer in keras_model.layers}
    for layer in keras_model.layers:
        inner = getattr(layer, "layer", None)
        if inner is not None:
            layer_names.add(inner.name)
    for path in tensor_name.split(";"):
        for part in path.split("/"):
            for candidate in (part, re.sub(r"^quant_", "", part)):
                if candidate in layer_names:
                    return candidate
    return "?"


def _output_layer_name(keras_model):
    layer = keras_model.layers[-1]
    return getattr(layer, "layer", layer).name  # tfmot wraps it as quant_<name>


def _layer_of_op(op, tensors, keras_model, model_outputs=()):
    """Keras layer of an op: named by its output tensor; for an op writing the model's output
    (named after the serving signature, not a layer) the model's last layer; else an input's
    (QUANTIZE/DEQUANTIZE)."""
    candidates = [i for i in op["outputs"] if i >= 0]
    for i in candidates:
        layer = layer_of_tensor(tensors[i]["name"], keras_model)
        if layer != "?":
            return layer
    if any(i in model_outputs for i in candidates):
        return _output_layer_name(keras_model)
    for i in op["inputs"]:
        if i >= 0:
            layer = layer_of_tensor(tensors[i]["name"], keras_model)
            if layer != "?":
                return layer
    return "?"


def check_deployable(tflite_bytes, keras_model):
    """Raises DeployError naming the op and its Keras layer when the model would not run on TFLM.

    Checked: every op is in TFLM_OPS; no op reads or writes a float tensor; FULLY_CONNECTED
    weights are per-tensor (the Arduino library's kernel reads one scale).
    """
    ops, tensors = ops_details(tflite_bytes)
    outputs = {d["index"] for d in tf.lite.Interpreter(
        model_content=tflite_bytes).get_output_details()}
    problems = []
    for op in ops:
        layer = _layer_of_op(op, tensors, keras_model, outputs)
        where = f"op {op['index']} {op['op_name']} (from Keras layer '{layer}')"
        if op["op_name"] not in TFLM_OPS:
            problems.append(f"{where}: not a builtin op of the TFLM library this project deploys "
                            f"with (supported: {', '.join(sorted(TFLM_OPS))})")
            continue
        types = list(op["operand_types"]) + list(op["result_types"])
        if any(np.dtype(t) in [np.dtype(f) for f in _FLOAT_TYPES] for t in types):
            problems.append(f"{where}: has float tensors "
                            f"({[np.dtype(t).name for t in types]}); the model must be full int8")
        if op["op_name"] == "FULLY_CONNECTED":
            scales = tensors[op["inputs"][1]]["quantization_parameters"]["scales"]
            if len(scales) != 1:
                problems.append(f"{where}: per-channel weights ({len(scales)} scales); the "
                                "Arduino TFLM FULLY_CONNECTED kernel needs per-tensor weights")
    if problems:
        raise DeployError("model cannot run as full int8 on TFLite Micro:\n  "
                          + "\n  ".join(problems))


def check_input_quantization(tflite_bytes, feature_scale):
    """The int8 input must be the device's int8 feature unchanged: scale == feature_scale, zp 0."""
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
    (detail,) = interpreter.get_input_details()
    scale, zero_point = detail["quantization"]
    if detail["dtype"] != np.int8 or not np.isclose(scale, feature_scale, rtol=1e-6, atol=0) \
            or zero_point != 0:
        raise DeployError(f"model input is {np.dtype(detail['dtype']).name} scale {scale} zero "
                          f"point {zero_point}; expected int8 scale {feature_scale} zero point 0 (the "
                          "representative set must span [-1, 127/128])")


@contextlib.contextmanager
def _captured_fd(fd):
    """Captures what C/C++ code writes to file descriptor `fd` (yields a list filled on exit)."""
    captured = []
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield captured
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))


def stderr_shown_on_failure(fn):
    """fn() with what C++ code writes to stderr held back (the converter's notes on every call),
    and written out when fn raises or TF_CPP_MIN_LOG_LEVEL asks for C++ logs."""
    failure = None
    with _captured_fd(2) as log:
        try:
            result = fn()
        except Exception as err:  # pylint: disable=broad-except  (re-raised below)
            failure = err
    if failure is not None or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") != "3":
        sys.stderr.write(log[0])
    if failure is not None:
        raise failure
    return result


def tflm_interpreter(tflite_bytes, arena_size=None):
    """TFLM interpreter (tflite_micro Python runtime, all builtin ops); DeployError if init fails."""
    from tflite_micro.python.tflite_micro import runtime  # pylint: disable=import-outside-toplevel
    with _captured_fd(2) as log:
        try:
            interpreter = runtime.Interpreter.from_bytes(bytes(tflite_bytes), arena_size=arena_size)
        except RuntimeError as err:
            failure = err
        else:
            failure = None
    if failure is not None:
        details = " ".join(line.strip() for line in log[0].splitlines() if line.strip())
        raise DeployError(f"TFLite Micro could not initialize the model: {failure} ({details})")
    return interpreter


def tflm_arena_used_bytes(tflite_bytes):
    """TFLM arena bytes in use after one Invoke (RecordingMicroAllocator's total)."""
    interpreter = tflm_interpreter(tflite_bytes, arena_size=max(1 << 20, 10 * len(tflite_bytes)))
    detail = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
    interpreter.invoke()
    with _captured_fd(2) as captured:
        interpreter.print_allocations()
    match = re.search(r"Arena allocation total (\d+) bytes", captured[0])
    if not match:
        raise RuntimeError("tflite_micro's allocation report did not state the arena total:\n"
                           + captured[0])
    return int(match.group(1))


def cmsis_nn_scratch_per_op(tflite_bytes):
    """[(op index, op name, bytes)]: the scratch buffer CMSIS-NN's Cortex-M4 (DSP) kernels ask of
    the arena for each op; the host runtime's reference kernels ask for none.

    These are the `*_get_buffer_size` functions of the CMSIS-NN in the Arduino library (Feb-2023
    sync), for ARM_MATH_DSP without MVE, as TFLM's cmsis_nn kernels call them:
      CONV_2D            arm_convolve_wrapper_s8: 0 for an unpadded stride-1 1x1 kernel (the
                         1x1 fast path), else 2 * c_in * kh * kw int16 (im2col of two columns);
      DEPTHWISE_CONV_2D  arm_depthwise_conv_wrapper_s8: c_in * kh * kw int16 when c_in == c_out
                         (depth multiplier 1; dilation is not read here, so a dilated depthwise
                         conv, which needs none, is over-counted), else 0;
      AVERAGE_POOL_2D    arm_avgpool_s8: c_in int32;
      FULLY_CONNECTED    arm_fully_connected_s8: 0.
    """
    ops, tensors = ops_details(tflite_bytes)
    sizes = []
    for op in ops:
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
            continue
        in_shape = tensors[op["inputs"][0]]["shape"]
        out_shape = tensors[op["outputs"][0]]["shape"]
        c_in = int(in_shape[-1])
        if name == "AVERAGE_POOL_2D":
            sizes.append((op["index"], name, 4 * c_in))
            continue
        kh, kw = (int(d) for d in tensors[op["inputs"][1]]["shape"][1:3])
        if name == "CONV_2D":
            # A 1x1 kernel has no padding under SAME or VALID; the stride is the output's ratio.
            stride_one = tuple(in_shape[1:3]) == tuple(out_shape[1:3])
            size = 0 if (kh, kw) == (1, 1) and stride_one else 2 * c_in * kh * kw * 2
        else:
            size = c_in * kh * kw * 2 if c_in == int(out_shape[-1]) else 0
        sizes.append((op["index"], name, size))
    return sizes


def cmsis_nn_scratch_bytes(tflite_bytes):
    """Largest per-op CMSIS-NN scratch buffer (bytes; see `cmsis_nn_scratch_per_op`)."""
    return max([size for _, _, size in cmsis_nn_scratch_per_op(tflite_bytes)], default=0)


def recommended_arena_bytes(arena_used_bytes, scratch_bytes, margin=1024):
    """Arena for the sketch: measured use + CMSIS-NN scratch + margin, rounded up to 16."""
    total = arena_used_bytes + scratch_bytes + margin
    return (total + 15) // 16 * 16
