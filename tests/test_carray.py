"""model_data.h / .cc: the contract's header, and a C array that compiles and holds the model."""
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import tf_keras as keras

from tflm_kws import carray
from tflm_kws import export
from tflm_kws import frontend

# The exact header of the project contract for the default frontend, 12 labels, a 12288-byte arena
# and these four ops.
CONTRACT_HEADER = """\
#ifndef TFLM_KWS_MODEL_DATA_H_
#define TFLM_KWS_MODEL_DATA_H_
extern const unsigned char g_model_data[];      // alignas(16) in model_data.cc
extern const unsigned int g_model_data_len;
// Frontend (from features.json): one constant per FrontendConfig field
constexpr int kAudioSampleRate = 16000;
constexpr int kClipDurationMs = 1000;
constexpr int kFeatureWindowSizeMs = 30;
constexpr int kFeatureWindowStrideMs = 20;
constexpr int kFeatureChannelCount = 40;      // num_channels
constexpr int kFeatureFrameCount = 49;        // num_frames
constexpr float kFeatureLowerBandLimit = 125.0f;
constexpr float kFeatureUpperBandLimit = 7500.0f;
constexpr int kFeatureSmoothingBits = 10;
constexpr float kFeatureEvenSmoothing = 0.025f;
constexpr float kFeatureOddSmoothing = 0.06f;
constexpr float kFeatureMinSignalRemaining = 0.05f;
constexpr bool kFeatureEnablePcan = true;
constexpr float kFeaturePcanStrength = 0.95f;
constexpr float kFeaturePcanOffset = 80.0f;
constexpr int kFeatureGainBits = 21;
constexpr bool kFeatureEnableLog = true;
constexpr int kFeatureScaleShift = 6;
constexpr float kFeatureInputScale = 0.0078125f;  // FEATURE_SCALE: model float input = int8 feature * this
// Labels
constexpr int kCategoryCount = 12;
extern const char* const kCategoryLabels[kCategoryCount];   // defined in model_data.cc
// Arena: measured arena_used_bytes from TFLM + CMSIS-NN scratch + margin, rounded up to 16
constexpr int kTensorArenaSize = 12288;
// TFLM's measured use (reference kernels): a smaller arena is refused before TFLM, which
// can abort inside its allocator when the arena is too small, sees it
constexpr int kTensorArenaUsedBytes = 9000;
// 0: the model takes the whole feature window. N: a streaming model (tflm_kws.streaming)
// taking the N newest frames a call, its kModelStateBytes of int8 state carried between
// calls in inputs / outputs 1..
constexpr int kModelStreamFrames = 0;
constexpr int kModelStateBytes = 0;
// The recognizer fires when a label's averaged score (of 255) exceeds this: micro_speech's
// default (no real recordings given to conversion)
constexpr int kDetectionThreshold = 200;
// Exactly the builtin ops the model uses, as MicroMutableOpResolver Add* calls
constexpr int kModelOpCount = 4;
#define TFLM_KWS_ADD_MODEL_OPS(resolver) \\
  do { (resolver).AddConv2D(); (resolver).AddDepthwiseConv2D(); (resolver).AddFullyConnected(); (resolver).AddReshape(); } while (0)
#endif
"""

# Compiles against the header as the sketch does, and dumps what the sketch would see.
MAIN_CC = r"""
#include <cstdio>
#include <cstdint>
#include "model_data.h"
struct Resolver {
  int count = 0;
  void AddConv2D() { ++count; }
  void AddDepthwiseConv2D() { ++count; }
  void AddFullyConnected() { ++count; }
  void AddReshape() { ++count; }
  void AddAveragePool2D() { ++count; }
};
static_assert(kTensorArenaSize % 16 == 0, "arena multiple of 16");
int main(int argc, char** argv) {
  Resolver resolver;
  TFLM_KWS_ADD_MODEL_OPS(resolver);
  if (resolver.count != kModelOpCount) return 2;
  if (reinterpret_cast<uintptr_t>(g_model_data) % 16 != 0) return 3;
  for (int i = 0; i < kCategoryCount; ++i) std::fprintf(stderr, "%s\n", kCategoryLabels[i]);
  std::FILE* out = std::fopen(argv[1], "wb");
  std::fwrite(g_model_data, 1, g_model_data_len, out);
  std::fclose(out);
  return 0;
}
"""


def test_header_is_the_contract():
    labels = [f"word{i}" for i in range(12)]
    text = carray.header_text(frontend.FrontendConfig(), labels, 12288,
                              ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE"], 9000)
    assert text == CONTRACT_HEADER


def test_header_follows_the_frontend_config():
    config = frontend.FrontendConfig(num_channels=32, window_stride_ms=10, enable_pcan=False,
                                     even_smoothing=0.03125)
    text = carray.header_text(config, ["a", "b"], 4096, ["CONV_2D"], 3000)
    assert "constexpr int kFeatureChannelCount = 32;" in text
    assert f"constexpr int kFeatureFrameCount = {config.num_frames};" in text
    assert "constexpr bool kFeatureEnablePcan = false;" in text
    assert "constexpr float kFeatureEvenSmoothing = 0.03125f;" in text
    assert "constexpr int kCategoryCount = 2;" in text


def test_unknown_op_and_unaligned_arena_are_rejected():
    with pytest.raises(ValueError, match="GELU"):
        carray.header_text(frontend.FrontendConfig(), ["a"], 4096, ["CONV_2D", "GELU"], 3000)
    with pytest.raises(ValueError, match="multiple of 16"):
        carray.header_text(frontend.FrontendConfig(), ["a"], 4100, ["CONV_2D"], 3000)
    with pytest.raises(ValueError, match="measured arena use 5000"):
        carray.header_text(frontend.FrontendConfig(), ["a"], 4096, ["CONV_2D"], 5000)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_c_array_compiles_and_holds_the_flatbuffer(tmp_path):
    inputs = keras.Input((49, 40, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.AveragePooling2D((25, 20))(x)
    x = keras.layers.Reshape((4,))(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    features = np.random.default_rng(0).integers(-128, 128, (8, 49, 40)).astype(np.int8)
    tflite_bytes = export.convert_int8(model, features)
    labels = ["yes", 'say "hi"', "_unknown_"]
    ops = export.op_names(tflite_bytes)
    header, source = carray.write_model_data(tmp_path, tflite_bytes, frontend.FrontendConfig(),
                                             labels, 4096, ops, 2048)
    assert "alignas(16) const unsigned char g_model_data[]" in pathlib.Path(source).read_text()
    main = tmp_path / "main.cc"
    main.write_text(MAIN_CC)
    flags = ["-std=c++14", "-Wall", "-Werror", f"-I{tmp_path}"]
    subprocess.run(["g++", *flags, "-c", source, "-o", str(tmp_path / "model_data.o")], check=True)
    subprocess.run(["g++", *flags, str(main), str(tmp_path / "model_data.o"), "-o",
                    str(tmp_path / "dump")], check=True)
    result = subprocess.run([str(tmp_path / "dump"), str(tmp_path / "dumped.tflite")],
                            capture_output=True, text=True, check=True)
    assert result.stderr.splitlines() == labels
    assert (tmp_path / "dumped.tflite").read_bytes() == tflite_bytes
