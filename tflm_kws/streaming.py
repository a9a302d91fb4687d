"""Streaming form of an int8 model: one call per `stride` new feature frames, temporal state kept
between calls, each call computing only the new outputs.

The streaming flatbuffer is derived from the non-streaming int8 flatbuffer by a graph rewrite (no
second conversion): every op keeps its weights, biases and the quantization of every tensor, so a
call's arithmetic is the non-streaming model's on the same int8 values, and its output after the
newest frame is bit-exact the non-streaming output on the window of the last `window_frames`
frames. What streams (time is axis 1 of every tensor before the pooling):
  - a conv (CONV_2D / DEPTHWISE_CONV_2D) with VALID padding (or a 1-frame stride-1 kernel) gets a
    ring buffer: CONCATENATION(state, new frames) -> the same conv on it -> the new outputs only,
    and STRIDED_SLICE keeps the last (kernel - stride) frames as the next state;
  - the average pooling over the whole window (the zoo's classifier head) gets a buffer of the
    pooled frame count and pools it;
  - RESHAPE that keeps time on axis 1 and PAD that pads other axes only work frame by frame, and
    ops after the pooling see no time axis: they are copied (with the new shapes).
Anything else (a conv with SAME padding in time, whose output at the window's edges depends on the
window's position; ADD; a Dense over time) raises NotStreamableError naming the op.

State lives in external tensors, not in TFLM resource variables: input 0 is the new frames
([1, stride, channels, 1], the non-streaming input's quantization), inputs 1.. are the states,
output 0 is the scores, output i (i >= 1) the next value of input i. The caller copies each
output state back into its input before the next call (`StreamingRunner`, the sketch's
model_runner.cpp). Why not resource variables: the int8 variable quantization of the TFLite
converter is experimental, a graph rewrite of the already-verified int8 model keeps the
quantization identical by construction, and plain tensors run on every TFLM version (the Feb-2023
Arduino library included) at the cost of copying ~1-2 KB of state a call.
"""
import dataclasses

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

_OP = schema.BuiltinOperator
_VALID = schema.Padding.VALID


class NotStreamableError(ValueError):
    """The model has an op that cannot be computed frame by frame with identical results."""


@dataclasses.dataclass
class StreamingInfo:
    window_frames: int       # frames the non-streaming model sees
    stride: int              # new frames per call
    state_bytes: int         # int8 state carried between calls (inputs 1..)


class _Graph:
    """Appends tensors, buffers, operator codes and ops to an unpacked model (ModelT)."""

    def __init__(self, model):
        self.model = model
        self.sub = model.subgraphs[0]
        self.ops = []

    def tensor(self, like, shape, name):
        """A new activation tensor with `like`'s type and quantization, and `shape`."""
        t = schema.TensorT()
        t.name = name.encode()
        t.shape = np.asarray(shape, np.int32)
        t.type = like.type
        t.quantization = like.quantization
        t.buffer = self._buffer(None)
        self.sub.tensors.append(t)
        return len(self.sub.tensors) - 1

    def constant(self, values, name):
        values = np.asarray(values, np.int32)
        t = schema.TensorT()
        t.name = name.encode()
        t.shape = np.asarray(values.shape, np.int32)
        t.type = schema.TensorType.INT32
        t.buffer = self._buffer(values.tobytes())
        self.sub.tensors.append(t)
        return len(self.sub.tensors) - 1

    def _buffer(self, data):
        b = schema.BufferT()
        if data is not None:
            b.data = np.frombuffer(data, np.uint8)
        self.model.buffers.append(b)
        return len(self.model.buffers) - 1

    def opcode(self, builtin, version=1):
        for i, code in enumerate(self.model.operatorCodes):
            if _code_builtin(code) == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = version
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    def add(self, builtin, inputs, outputs, options_type=0, options=None, like=None):
        op = schema.OperatorT()
        if like is not None:
            op.opcodeIndex = like.opcodeIndex
            op.builtinOptionsType, op.builtinOptions = like.builtinOptionsType, like.builtinOptions
        else:
            op.opcodeIndex = self.opcode(builtin)
            op.builtinOptionsType, op.builtinOptions = options_type, options
        op.inputs = np.asarray(inputs, np.int32)
        op.outputs = np.asarray(outputs, np.int32)
        self.ops.append(op)

    def concat_time(self, state, new, out):
        options = schema.ConcatenationOptionsT()
        options.axis = 1
        self.add(_OP.CONCATENATION, [state, new], [out],
                 schema.BuiltinOptions.ConcatenationOptions, options)

    def streamed(self, like, frames, name=None):
        """A new tensor like activation `like` (index) with `frames` frames on the time axis
        (named `name`, default like's name + "/stream")."""
        tensor = self.sub.tensors[like]
        return self.tensor(tensor, [1, frames] + list(tensor.shape[2:]),
                           name or tensor.name.decode() + "/stream")

    def drop_oldest(self, buffer, frames, shape, out, name):
        """out = buffer[:, frames:] (the next state)."""
        options = schema.StridedSliceOptionsT()
        begin = self.constant([0, frames] + [0] * (len(shape) - 2), f"{name}/begin")
        end = self.constant(list(shape), f"{name}/end")
        strides = self.constant([1] * len(shape), f"{name}/strides")
        self.add(_OP.STRIDED_SLICE, [buffer, begin, end, strides], [out],
                 schema.BuiltinOptions.StridedSliceOptions, options)


def _code_builtin(code):
    # Codes below 127 may sit in the deprecated field only; newer ones in builtinCode only.
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _builtin(model, op):
    return _code_builtin(model.operatorCodes[op.opcodeIndex])


def _op_name(builtin):
    return next(k for k, v in vars(_OP).items() if v == builtin)


def _constant(model, index):
    """The int32 values of constant tensor `index`, shaped, or None if it is not a constant."""
    tensor = model.subgraphs[0].tensors[index]
    data = model.buffers[tensor.buffer].data
    if data is None or tensor.type != schema.TensorType.INT32:
        return None
    return np.frombuffer(bytes(data), np.int32).reshape(tensor.shape)


def _temporal_kernel(model, op, builtin):
    """(effective kernel frames, stride, padding) of a conv or pool along time."""
    sub, opts = model.subgraphs[0], op.builtinOptions
    if builtin == _OP.AVERAGE_POOL_2D:
        return opts.filterHeight, opts.strideH, opts.padding
    kernel_shape = sub.tensors[op.inputs[1]].shape  # conv (out, kh, kw, in); depthwise (1, kh, ...)
    return (int(kernel_shape[1]) - 1) * opts.dilationHFactor + 1, opts.strideH, opts.padding


def streaming_model(tflite_bytes):
    """(streaming flatbuffer bytes, StreamingInfo) of a non-streaming int8 flatbuffer."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    if len(model.subgraphs) != 1:
        raise NotStreamableError(f"the model has {len(model.subgraphs)} subgraphs; one is needed")
    sub = model.subgraphs[0]
    if len(sub.inputs) != 1 or len(sub.outputs) != 1:
        raise NotStreamableError("the model must have one input and one output")
    graph = _Graph(model)
    tensors = sub.tensors
    in_index = int(sub.inputs[0])
    window = int(tensors[in_index].shape[1])
    # Frames per call of each tensor's streaming form (the stride product through the graph).
    stride = 1
    for op in sub.operators:
        builtin = _builtin(model, op)
        if builtin in (_OP.CONV_2D, _OP.DEPTHWISE_CONV_2D):
            stride *= op.builtinOptions.strideH
    rate = {in_index: stride}
    stream_of = {}
    new_input = graph.streamed(in_index, stride, "frames")
    stream_of[in_index] = new_input
    state_inputs, state_outputs = [], []
    state_bytes = 0
    pooled = set()  # tensors that no longer have a time axis (at or after the pooling)

    for position, op in enumerate(sub.operators):
        builtin = _builtin(model, op)
        name = f"op {position} ({_op_name(builtin)})"
        ins = [int(i) for i in op.inputs]
        outs = [int(i) for i in op.outputs]
        data_ins = [i for i in ins if i >= 0 and (i in rate or i in pooled)]
        if data_ins and all(i in pooled for i in data_ins):
            graph.add(builtin, ins, outs, like=op)  # after the pooling: unchanged
            pooled.update(outs)
            continue
        if len(data_ins) != 1 or data_ins[0] not in rate:
            raise NotStreamableError(f"{name} combines several activations; only chains of "
                                     f"convs, reshapes and the final pooling stream")
        x = data_ins[0]
        n = rate[x]
        out = outs[0]
        out_shape = list(tensors[out].shape)
        if builtin == _OP.RESHAPE:
            in_shape = list(tensors[x].shape)
            if len(out_shape) < 2 or out_shape[1] != in_shape[1]:
                raise NotStreamableError(f"{name} moves the time axis ({in_shape} -> {out_shape})")
            shape = [1, n] + out_shape[2:]
            new_out = graph.streamed(out, n)
            options = schema.ReshapeOptionsT()
            options.newShape = np.asarray(shape, np.int32)
            graph.add(_OP.RESHAPE, [stream_of[x], graph.constant(shape, f"{name}/shape")],
                      [new_out], schema.BuiltinOptions.ReshapeOptions, options)
            stream_of[out], rate[out] = new_out, n
            continue
        if builtin in (_OP.PAD, _OP.PADV2):
            paddings = _constant(model, ins[1])
            if paddings is None or tuple(paddings[1]) != (0, 0):
                raise NotStreamableError(f"{name} pads in time; only padding along other axes "
                                         f"streams")
            new_out = graph.streamed(out, n)
            graph.add(builtin, [stream_of[x]] + ins[1:], [new_out], like=op)
            stream_of[out], rate[out] = new_out, n
            continue
        if builtin not in (_OP.CONV_2D, _OP.DEPTHWISE_CONV_2D, _OP.AVERAGE_POOL_2D):
            raise NotStreamableError(f"{name} on a time-varying tensor has no streaming form")
        kernel, step, padding = _temporal_kernel(model, op, builtin)
        length = int(tensors[x].shape[1])
        is_pool = builtin == _OP.AVERAGE_POOL_2D
        if is_pool:
            if out_shape[1] != 1 or kernel != length:
                raise NotStreamableError(f"{name} pools {kernel} of {length} frames; only a "
                                         f"pooling over the whole time axis streams")
            kernel, step, out_rate = length, 1, 1
        else:
            if padding != _VALID and not (kernel == 1 and step == 1):
                raise NotStreamableError(f"{name} pads in time (SAME): its output on a window "
                                         f"depends on where the window starts; build the model "
                                         f"with padding 'valid' in time")
            if (length - kernel) % step:
                raise NotStreamableError(f"{name}: {length} frames, kernel {kernel}, stride "
                                         f"{step}: the last frames are not used, so the output "
                                         f"would not follow the newest frame")
            if n % step:
                raise NotStreamableError(f"{name}: {n} frames a call do not split by stride {step}")
            out_rate = n // step
        in_tensor = tensors[x]
        rest = list(in_tensor.shape[2:])
        carried = kernel - step if not is_pool else kernel - n
        if carried < 0:
            raise NotStreamableError(f"{name}: {n} new frames a call exceed its {kernel}-frame "
                                     f"window")
        source = stream_of[x]
        if carried > 0:
            label = tensors[out].name.decode().split(";")[0]
            state_in = graph.tensor(in_tensor, [1, carried] + rest, f"state/{label}")
            state_out = graph.tensor(in_tensor, [1, carried] + rest, f"next_state/{label}")
            buffer_shape = [1, carried + n] + rest
            buffer = graph.tensor(in_tensor, buffer_shape, f"buffer/{label}")
            graph.concat_time(state_in, source, buffer)
            graph.drop_oldest(buffer, n, buffer_shape, state_out, f"{label}/next_state")
            state_inputs.append(state_in)
            state_outputs.append(state_out)
            state_bytes += int(np.prod([carried] + rest))
            source = buffer
        if is_pool:
            # The pooled tensor has no time axis: it and everything after it stay as they are.
            graph.add(builtin, [source] + ins[1:], outs, like=op)
            pooled.add(out)
            continue
        new_out = graph.streamed(out, out_rate)
        graph.add(builtin, [source] + ins[1:], [new_out], like=op)
        stream_of[out], rate[out] = new_out, out_rate
    (out_index,) = [int(i) for i in sub.outputs]
    if out_index not in pooled:
        raise NotStreamableError("the model's output keeps a time axis; it must end in a pooling "
                                 "over time")
    sub.operators = graph.ops
    sub.inputs = np.asarray([new_input] + state_inputs, np.int32)
    sub.outputs = np.asarray([out_index] + state_outputs, np.int32)
    model.signatureDefs = []  # they name the non-streaming input
    info = StreamingInfo(window_frames=window, stride=stride, state_bytes=state_bytes)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), info


def _subgraph(tflite_bytes):
    return flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes)).subgraphs[0]


def layout(tflite_bytes):
    """(frames a call, state bytes) of a streaming flatbuffer; (0, 0) for a whole-window one."""
    sub = _subgraph(tflite_bytes)
    if len(sub.inputs) == 1:
        return 0, 0
    frames = int(sub.tensors[sub.inputs[0]].shape[1])
    return frames, sum(int(np.prod(sub.tensors[i].shape)) for i in sub.inputs[1:])


class StreamingRunner:
    """Runs a streaming flatbuffer in TFLM (tflite_micro Python runtime) as the sketch does: each
    call takes `stride` new int8 feature frames, copies the previous call's output states into the
    state inputs (starting from the zero point, i.e. 0.0), and returns the raw int8 scores."""

    def __init__(self, stream_bytes, arena_size=None):
        from tflm_kws import export  # pylint: disable=import-outside-toplevel
        self.interpreter = export.tflm_interpreter(stream_bytes, arena_size)
        self.input_detail = self.interpreter.get_input_details(0)
        self.output_detail = self.interpreter.get_output_details(0)
        self.stride = int(self.input_detail["shape"][1])
        self.num_states = len(_subgraph(stream_bytes).inputs) - 1
        self.reset()

    def reset(self):
        self.states = []
        for i in range(1, self.num_states + 1):
            detail = self.interpreter.get_input_details(i)
            zero_point = int(detail["quantization_parameters"]["zero_points"][0])
            self.states.append(np.full(detail["shape"], zero_point, detail["dtype"]))

    def step(self, frames_int8):
        """Raw scores after `stride` new frames (int8 features [stride, channels])."""
        from tflm_kws import evaluate  # pylint: disable=import-outside-toplevel
        x = evaluate.quantize_input(np.asarray(frames_int8)[np.newaxis], self.input_detail)
        # TFLM reuses input buffers during Invoke: every input is written before every call.
        self.interpreter.set_input(x.reshape(self.input_detail["shape"]), 0)
        for i, state in enumerate(self.states, start=1):
            self.interpreter.set_input(state, i)
        self.interpreter.invoke()
        self.states = [np.array(self.interpreter.get_output(i), copy=True)
                       for i in range(1, self.num_states + 1)]
        return np.array(self.interpreter.get_output(0), copy=True).reshape(-1)

    def run(self, frames_int8):
        """Raw scores [calls, classes] of a frame sequence [frames, channels], one row per call
        (frames are consumed `stride` at a time; a last partial call is dropped)."""
        frames_int8 = np.asarray(frames_int8)
        calls = len(frames_int8) // self.stride
        return np.stack([self.step(frames_int8[i * self.stride:(i + 1) * self.stride])
                         for i in range(calls)]) if calls else np.zeros((0, 0), np.int8)


def stream_window(runner, window_int8):
    """Raw streaming scores after the last frame of one window [window_frames, channels]: the
    window is fed from a fresh state, preceded by frames of zero point so that its last frame ends
    a call (the output then depends on the window's frames only)."""
    window_int8 = np.asarray(window_int8)
    lead = (-len(window_int8)) % runner.stride
    padded = np.concatenate([np.zeros((lead,) + window_int8.shape[1:], window_int8.dtype),
                             window_int8])
    runner.reset()
    return runner.run(padded)[-1]


def verify(tflite_bytes, features_int8, labels, window_outputs):
    """(streaming bytes or None, report dict): the streaming form of `tflite_bytes`, checked on
    every clip of `features_int8` [N, frames, channels] against the non-streaming model's TFLM
    outputs `window_outputs` [N, classes] (raw int8); labels [N] give its accuracy. The dict also
    holds what the sketch needs of it: arena (kTensorArenaSize as conversion sizes it) and ops."""
    try:
        stream_bytes, info = streaming_model(tflite_bytes)
    except NotStreamableError as err:
        return None, {"streamable": False, "reason": str(err)}
    runner = StreamingRunner(stream_bytes)
    outputs = np.stack([stream_window(runner, clip) for clip in features_int8])
    identical = int(np.sum(np.all(outputs == np.asarray(window_outputs), axis=1)))
    from tflm_kws import export  # pylint: disable=import-outside-toplevel
    arena_used = export.tflm_arena_used_bytes(stream_bytes)
    scratch = export.cmsis_nn_scratch_bytes(stream_bytes)
    return stream_bytes, {
        "streamable": True,
        "frames_per_call": info.stride,
        "window_frames": info.window_frames,
        "state_bytes": info.state_bytes,
        "identical_outputs": identical,
        "clips": int(len(features_int8)),
        "accuracy": float(np.mean(np.argmax(outputs, axis=1) == np.asarray(labels))),
        "arena_used_bytes": arena_used,
        "cmsis_nn_scratch_bytes": scratch,
        "tensor_arena_size": export.recommended_arena_bytes(arena_used, scratch),
        "ops": export.op_names(stream_bytes),
        "flatbuffer_bytes": len(stream_bytes),
    }


def continuous_frontend_accuracy(stream_bytes, clips_int16, labels, config, lead="silence"):
    """Accuracy of the streaming model run as the device runs it: one frontend and one model
    state for the whole stream (`lead` audio, then the clip), the prediction taken after the
    clip's last frame. Training features are computed per clip from a fresh frontend (its noise
    estimate and gain start from zero); on the device they carry over from whatever came before.

    clips_int16: 1-D int16 clips of exactly config.clip_samples; lead: "silence" (1 s of zeros, as
    the host binary streams a file) or "previous_clip" (the clip before it in the list: speech
    just before)."""
    from tflm_kws import frontend  # pylint: disable=import-outside-toplevel
    runner = StreamingRunner(stream_bytes)
    correct = 0
    for i, (clip, label) in enumerate(zip(clips_int16, labels)):
        if lead == "silence":
            before = np.zeros(config.clip_samples, np.int16)
        elif lead == "previous_clip":
            before = clips_int16[i - 1]
        else:
            raise ValueError(f"lead must be 'silence' or 'previous_clip', got {lead!r}")
        features = frontend.compute_stream_features(np.concatenate([before, clip]), config)
        # The clip's frames are the stream's last ones; frames before the clip's window (cut so
        # that the last call ends at its last frame) only warm the frontend and the states.
        usable = len(features) - len(features) % runner.stride
        runner.reset()
        scores = runner.run(features[len(features) - usable:])[-1]
        correct += int(np.argmax(scores) == label)
    return correct / max(1, len(labels))
