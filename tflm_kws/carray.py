"""model_data.cc / model_data.h: the int8 model as a C array plus the constants the sketch needs.

The header's content is the project contract (see docs/conversion.md): the frontend parameters (one
constant per FrontendConfig field), the labels, the recommended tensor arena size and the exact set
of builtin ops as MicroMutableOpResolver Add* calls.
"""
import dataclasses
import os

from tflm_kws import export
from tflm_kws import frontend
from tflm_kws import io_utils
from tflm_kws import recognizer
from tflm_kws import streaming

HEADER_NAME = "model_data.h"
SOURCE_NAME = "model_data.cc"

# FrontendConfig field -> (C++ constant, C++ type). Order is the header's order.
_FRONTEND_CONSTANTS = (
    ("sample_rate", "kAudioSampleRate", "int"),
    ("clip_duration_ms", "kClipDurationMs", "int"),
    ("window_size_ms", "kFeatureWindowSizeMs", "int"),
    ("window_stride_ms", "kFeatureWindowStrideMs", "int"),
    ("num_channels", "kFeatureChannelCount", "int"),
    ("num_frames", "kFeatureFrameCount", "int"),
    ("lower_band_limit", "kFeatureLowerBandLimit", "float"),
    ("upper_band_limit", "kFeatureUpperBandLimit", "float"),
    ("smoothing_bits", "kFeatureSmoothingBits", "int"),
    ("even_smoothing", "kFeatureEvenSmoothing", "float"),
    ("odd_smoothing", "kFeatureOddSmoothing", "float"),
    ("min_signal_remaining", "kFeatureMinSignalRemaining", "float"),
    ("enable_pcan", "kFeatureEnablePcan", "bool"),
    ("pcan_strength", "kFeaturePcanStrength", "float"),
    ("pcan_offset", "kFeaturePcanOffset", "float"),
    ("gain_bits", "kFeatureGainBits", "int"),
    ("enable_log", "kFeatureEnableLog", "bool"),
    ("scale_shift", "kFeatureScaleShift", "int"),
)
_COMMENTS = {"kFeatureChannelCount": "      // num_channels",
             "kFeatureFrameCount": "        // num_frames"}


def _cpp_literal(value, cpp_type):
    if cpp_type == "bool":
        return "true" if value else "false"
    if cpp_type == "int":
        return str(int(value))
    text = repr(float(value))  # shortest round-trip form, e.g. 0.025 or 7500.0
    if "e" in text or "E" in text:
        text = f"{float(value):.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


def _cpp_string(text):
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if 32 <= ord(c) < 127 else f"\\{ord(c):03o}" for c in escaped) + '"'


def resolver_methods(op_names):
    """MicroMutableOpResolver method per builtin op, in the given order; ValueError if unknown."""
    unknown = [op for op in op_names if op not in export.TFLM_OPS]
    if unknown:
        raise ValueError(f"no MicroMutableOpResolver method for op(s) {unknown}; "
                         f"known: {', '.join(sorted(export.TFLM_OPS))}")
    return [export.TFLM_OPS[op] for op in op_names]


def header_text(config: frontend.FrontendConfig, labels, arena_size, op_names, arena_used_bytes,
                stream_frames=0, state_bytes=0, detection_threshold=None):
    """model_data.h content. arena_size: kTensorArenaSize (the sketch's arena); arena_used_bytes:
    what TFLM measured the model to use, below which the sketch refuses to start; stream_frames,
    state_bytes: of a streaming model (`tflm_kws.streaming`), 0 for a whole-window model;
    detection_threshold: the recognizer's kDetectionThreshold, chosen for this model on real
    recordings (`evaluate_wake_word`), or None for micro_speech's 200."""
    chosen = detection_threshold is not None
    threshold = int(detection_threshold) if chosen else recognizer.DETECTION_THRESHOLD
    if not 0 <= threshold <= 255:
        raise ValueError(f"detection threshold {threshold} is not in [0, 255]")
    if arena_size % 16:
        raise ValueError(f"arena size {arena_size} is not a multiple of 16")
    if not 0 < arena_used_bytes <= arena_size:
        raise ValueError(f"measured arena use {arena_used_bytes} must be in (0, arena size "
                         f"{arena_size}]")
    methods = resolver_methods(op_names)
    values = dataclasses.asdict(config)
    values["num_frames"] = config.num_frames
    lines = [
        "#ifndef TFLM_KWS_MODEL_DATA_H_",
        "#define TFLM_KWS_MODEL_DATA_H_",
        "extern const unsigned char g_model_data[];      // alignas(16) in model_data.cc",
        "extern const unsigned int g_model_data_len;",
        "// Frontend (from features.json): one constant per FrontendConfig field",
    ]
    for field, name, cpp_type in _FRONTEND_CONSTANTS:
        line = f"constexpr {cpp_type} {name} = {_cpp_literal(values[field], cpp_type)};"
        if name in _COMMENTS:
            line += _COMMENTS[name]
        lines.append(line)
    lines += [
        f"constexpr float kFeatureInputScale = {_cpp_literal(frontend.FEATURE_SCALE, 'float')};"
        "  // FEATURE_SCALE: model float input = int8 feature * this",
        "// Labels",
        f"constexpr int kCategoryCount = {len(labels)};",
        "extern const char* const kCategoryLabels[kCategoryCount];   // defined in model_data.cc",
        "// Arena: measured arena_used_bytes from TFLM + CMSIS-NN scratch + margin, rounded up to 16",
        f"constexpr int kTensorArenaSize = {int(arena_size)};",
        "// TFLM's measured use (reference kernels): a smaller arena is refused before TFLM, which",
        "// can abort inside its allocator when the arena is too small, sees it",
        f"constexpr int kTensorArenaUsedBytes = {int(arena_used_bytes)};",
        "// 0: the model takes the whole feature window. N: a streaming model (tflm_kws.streaming)",
        "// taking the N newest frames a call, its kModelStateBytes of int8 state carried between",
        "// calls in inputs / outputs 1..",
        f"constexpr int kModelStreamFrames = {int(stream_frames)};",
        f"constexpr int kModelStateBytes = {int(state_bytes)};",
        ("// The recognizer fires when a label's averaged score (of 255) exceeds this: chosen for "
         "this model" if chosen else "// The recognizer fires when a label's averaged score (of "
         "255) exceeds this: micro_speech's"),
        ("// on real recordings for a target false-accept rate (tflm_kws.evaluate_wake_word)"
         if chosen else "// default (no real recordings given to conversion)"),
        f"constexpr int kDetectionThreshold = {threshold};",
        "// Exactly the builtin ops the model uses, as MicroMutableOpResolver Add* calls",
        f"constexpr int kModelOpCount = {len(methods)};",
        "#define TFLM_KWS_ADD_MODEL_OPS(resolver) \\",
        "  do { " + " ".join(f"(resolver).{m}();" for m in methods) + " } while (0)",
        "#endif",
    ]
    return "\n".join(lines) + "\n"


def source_text(tflite_bytes, labels):
    """model_data.cc content: the flatbuffer bytes (16-byte aligned), its length and the labels."""
    data = bytes(tflite_bytes)
    rows = []
    for start in range(0, len(data), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in data[start:start + 12]) + ",")
    label_list = ", ".join(_cpp_string(str(label)) for label in labels)
    return "\n".join([
        "// Generated by tflm_kws.carray from model_int8.tflite; do not edit.",
        f'#include "{HEADER_NAME}"',
        "",
        "// TFLM reads the flatbuffer in place: 16-byte alignment keeps its tensors aligned.",
        "alignas(16) const unsigned char g_model_data[] = {",
        *rows,
        "};",
        f"const unsigned int g_model_data_len = {len(data)};",
        "",
        f"const char* const kCategoryLabels[kCategoryCount] = {{{label_list}}};",
        "",
    ])


def write_model_data(directory, tflite_bytes, config, labels, arena_size, op_names,
                     arena_used_bytes, detection_threshold=None):
    """Writes model_data.h and model_data.cc into `directory` (atomically); returns both paths."""
    header = os.path.join(directory, HEADER_NAME)
    source = os.path.join(directory, SOURCE_NAME)
    stream_frames, state_bytes = streaming.layout(tflite_bytes)
    header_content = header_text(config, labels, arena_size, op_names, arena_used_bytes,
                                 stream_frames, state_bytes, detection_threshold)
    source_content = source_text(tflite_bytes, labels)
    with io_utils.atomic_write(header, "w") as f:
        f.write(header_content)
    with io_utils.atomic_write(source, "w") as f:
        f.write(source_content)
    return header, source
