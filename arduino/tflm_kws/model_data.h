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
constexpr int kTensorArenaSize = 9376;
// TFLM's measured use (reference kernels): a smaller arena is refused before TFLM, which
// can abort inside its allocator when the arena is too small, sees it
constexpr int kTensorArenaUsedBytes = 7232;
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
#define TFLM_KWS_ADD_MODEL_OPS(resolver) \
  do { (resolver).AddReshape(); (resolver).AddConv2D(); (resolver).AddAveragePool2D(); (resolver).AddFullyConnected(); } while (0)
#endif
