// Turns captured audio into the model's input spectrogram: TFLM's microfrontend configured from
// model_data.h, fed contiguous audio as the training pipeline does (tflm_kws.frontend), each 20 ms
// slice mapped to int8 as micro_speech does, kept in a sliding window of kFeatureFrameCount slices.
#ifndef TFLM_KWS_FEATURE_PROVIDER_H_
#define TFLM_KWS_FEATURE_PROVIDER_H_

#include <cstdint>

#include "model_data.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"

constexpr int kAudioSamplesPerMs = kAudioSampleRate / 1000;
constexpr int kFeatureWindowSamples = kFeatureWindowSizeMs * kAudioSamplesPerMs;
constexpr int kFeatureStrideSamples = kFeatureWindowStrideMs * kAudioSamplesPerMs;
constexpr int kFeatureElementCount = kFeatureFrameCount * kFeatureChannelCount;
static_assert(kAudioSampleRate % 1000 == 0, "sample rate must be a whole number of kHz");
static_assert(kFeatureStrideSamples <= kFeatureWindowSamples, "stride longer than the window");

// micro_speech's int8 mapping of one frontend output value (roughly 0..670):
// (value * 256 + 333) / 666 - 128, clamped to int8.
int8_t FrontendValueToInt8(uint16_t value);

class FeatureProvider {
 public:
  // `feature_data` holds kFeatureElementCount int8 values, [frame][channel], oldest frame first.
  explicit FeatureProvider(int8_t* feature_data);
  ~FeatureProvider();

  // Sets up the microfrontend. False (after logging why) on failure.
  bool Begin();

  // Computes every slice whose audio lies within the first `sample_count` samples and slides it
  // into the window. `how_many_new_slices` gets the number of slices added. When more than a window
  // is pending (the loop fell behind), earlier audio is dropped and the frontend restarts from a
  // fresh state at the oldest slice still needed. False (after logging why) on failure.
  bool PopulateFeatureData(int64_t sample_count, int* how_many_new_slices);

  // Number of slices computed since Begin(); the newest slice covers the audio ending at sample
  // (slices_computed() - 1) * kFeatureStrideSamples + kFeatureWindowSamples.
  int64_t slices_computed() const { return next_slice_; }

 private:
  bool ComputeSlice(int8_t* slice);
  void Restart(int64_t slice);

  int8_t* feature_data_;
  FrontendState frontend_state_;
  bool frontend_ready_;
  int64_t next_slice_;       // index of the next slice to compute
  int64_t next_sample_;      // first sample not yet fed to the frontend
  int16_t audio_[kFeatureWindowSamples];
};

#endif  // TFLM_KWS_FEATURE_PROVIDER_H_
