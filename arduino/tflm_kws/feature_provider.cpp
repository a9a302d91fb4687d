#include "feature_provider.h"

#include <cstring>

#include "audio_provider.h"
#include "kws_log.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

int8_t FrontendValueToInt8(uint16_t value) {
  constexpr int32_t kValueScale = 256;
  constexpr int32_t kValueDiv = static_cast<int32_t>((25.6f * 26.0f) + 0.5f);  // 666
  int32_t v = ((static_cast<int32_t>(value) * kValueScale) + (kValueDiv / 2)) / kValueDiv - 128;
  if (v < -128) v = -128;
  if (v > 127) v = 127;
  return static_cast<int8_t>(v);
}

FeatureProvider::FeatureProvider(int8_t* feature_data)
    : feature_data_(feature_data), frontend_ready_(false), next_slice_(0), next_sample_(0) {
  memset(feature_data_, 0, kFeatureElementCount);
}

FeatureProvider::~FeatureProvider() {
  if (frontend_ready_) FrontendFreeStateContents(&frontend_state_);
}

bool FeatureProvider::Begin() {
  FrontendConfig config;
  FrontendFillConfigWithDefaults(&config);
  config.window.size_ms = kFeatureWindowSizeMs;
  config.window.step_size_ms = kFeatureWindowStrideMs;
  config.filterbank.num_channels = kFeatureChannelCount;
  config.filterbank.lower_band_limit = kFeatureLowerBandLimit;
  config.filterbank.upper_band_limit = kFeatureUpperBandLimit;
  config.noise_reduction.smoothing_bits = kFeatureSmoothingBits;
  config.noise_reduction.even_smoothing = kFeatureEvenSmoothing;
  config.noise_reduction.odd_smoothing = kFeatureOddSmoothing;
  config.noise_reduction.min_signal_remaining = kFeatureMinSignalRemaining;
  config.pcan_gain_control.enable_pcan = kFeatureEnablePcan ? 1 : 0;
  config.pcan_gain_control.strength = kFeaturePcanStrength;
  config.pcan_gain_control.offset = kFeaturePcanOffset;
  config.pcan_gain_control.gain_bits = kFeatureGainBits;
  config.log_scale.enable_log = kFeatureEnableLog ? 1 : 0;
  config.log_scale.scale_shift = kFeatureScaleShift;
  if (!FrontendPopulateState(&config, &frontend_state_, kAudioSampleRate)) {
    KwsLog("FrontendPopulateState() failed (out of memory or bad frontend constants in model_data.h)");
    return false;
  }
  frontend_ready_ = true;
  Restart(0);
  return true;
}

void FeatureProvider::Restart(int64_t slice) {
  FrontendReset(&frontend_state_);
  next_slice_ = slice;
  next_sample_ = slice * kFeatureStrideSamples;
}

bool FeatureProvider::ComputeSlice(int8_t* slice) {
  // The frontend keeps the overlap between windows itself: feed only the samples it has not seen.
  const int64_t end = next_slice_ * kFeatureStrideSamples + kFeatureWindowSamples;
  const int count = static_cast<int>(end - next_sample_);
  if (!GetAudioSamples(next_sample_, count, audio_)) {
    KwsLog("Audio samples %d..%d are no longer buffered (the loop fell behind); restarting features",
           static_cast<int>(next_sample_), static_cast<int>(end));
    return false;
  }
  size_t num_samples_read = 0;
  const FrontendOutput output =
      FrontendProcessSamples(&frontend_state_, audio_, count, &num_samples_read);
  if (num_samples_read != static_cast<size_t>(count) ||
      output.size != static_cast<size_t>(kFeatureChannelCount)) {
    KwsLog("Frontend produced %d values from %d of %d samples, expected %d values",
           static_cast<int>(output.size), static_cast<int>(num_samples_read), count,
           kFeatureChannelCount);
    return false;
  }
  for (int i = 0; i < kFeatureChannelCount; ++i) {
    slice[i] = FrontendValueToInt8(output.values[i]);
  }
  next_sample_ = end;
  ++next_slice_;
  return true;
}

bool FeatureProvider::PopulateFeatureData(int64_t sample_count, int* how_many_new_slices) {
  *how_many_new_slices = 0;
  if (!frontend_ready_) {
    KwsLog("FeatureProvider::PopulateFeatureData() called before Begin()");
    return false;
  }
  if (sample_count < kFeatureWindowSamples) return true;
  const int64_t slices_available = (sample_count - kFeatureWindowSamples) / kFeatureStrideSamples + 1;
  int64_t pending = slices_available - next_slice_;
  if (pending <= 0) return true;
  if (pending > kFeatureFrameCount) {
    Restart(slices_available - kFeatureFrameCount);
    pending = kFeatureFrameCount;
  }
  const int new_slices = static_cast<int>(pending);
  // Slide the window: drop the oldest slices, compute the new ones at the end.
  memmove(feature_data_, feature_data_ + new_slices * kFeatureChannelCount,
          (kFeatureFrameCount - new_slices) * kFeatureChannelCount);
  for (int i = kFeatureFrameCount - new_slices; i < kFeatureFrameCount; ++i) {
    if (!ComputeSlice(feature_data_ + i * kFeatureChannelCount)) {
      Restart(slices_available);
      return false;
    }
    ++*how_many_new_slices;
  }
  return true;
}
