// One step of the device's main loop, shared by the sketch and the host tests: new audio ->
// feature slices -> model -> recognizer. It sees the model through KwsModel only, so it builds
// without TFLM (the host tests drive it with the real model's recorded outputs in CI).
#ifndef TFLM_KWS_KEYWORD_SPOTTER_H_
#define TFLM_KWS_KEYWORD_SPOTTER_H_

#include <cstddef>
#include <cstdint>

#include "feature_provider.h"
#include "kws_model.h"
#include "model_data.h"
#include "recognize_commands.h"

struct SpotterResult {
  bool inference_ran;      // false when no new feature slice was ready
  int32_t time_ms;         // end of the audio the inference saw
  const char* label;       // the recognizer's current top label
  uint8_t score;           // its averaged score, 0..255
  bool is_new_command;
  uint8_t scores[kCategoryCount];  // this inference's scores
};

class KeywordSpotter {
 public:
  // `model` (already set up) must outlive the spotter.
  explicit KeywordSpotter(KwsModel* model);

  // Sets up the frontend. False (after logging why) on failure.
  bool Begin();

  // Processes the audio captured up to `sample_count` samples: computes the pending feature slices
  // and, if there were any, runs the model once on the newest window and updates the recognizer.
  // A streaming model (frames_per_call() N > 0) instead runs once per N new slices, on every group
  // of N in order (the recognizer sees each call's scores; `result` holds the last one); slices
  // not yet a full group wait for the next Process().
  bool Process(int64_t sample_count, SpotterResult* result);

  const int8_t* features() const { return features_; }
  const FeatureProvider& feature_provider() const { return feature_provider_; }

 private:
  // Runs the model on `features`, whose last frame is followed by `newer_frames` computed slices.
  bool RunModel(const int8_t* features, int newer_frames, SpotterResult* result);

  int8_t features_[kFeatureElementCount];
  FeatureProvider feature_provider_;
  KwsModel* model_;
  RecognizeCommands recognizer_;
  int pending_frames_;  // streaming: new slices not yet given to the model
};

#endif  // TFLM_KWS_KEYWORD_SPOTTER_H_
