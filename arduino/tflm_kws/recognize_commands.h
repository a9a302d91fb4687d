// Turns the stream of per-inference scores into discrete commands with micro_speech's
// RecognizeCommands semantics: average the scores of the last kAverageWindowDurationMs, report the
// top label when its average exceeds kDetectionThreshold, suppress repeats of the same label for
// kSuppressionMs, and stay quiet until kMinimumCount results span a quarter of the window.
#ifndef TFLM_KWS_RECOGNIZE_COMMANDS_H_
#define TFLM_KWS_RECOGNIZE_COMMANDS_H_

#include <cstdint>

#include "model_data.h"

// kDetectionThreshold (of 255) comes with the model, in model_data.h: conversion chooses it on
// real recordings when given some (tflm_kws.evaluate_wake_word), else micro_speech's 200.
constexpr int32_t kAverageWindowDurationMs = 1000;
constexpr int32_t kSuppressionMs = 1500;
constexpr int32_t kMinimumCount = 3;

// The label that means "no command" (micro_speech's kCategoryLabels[0]); -1 when the model has none.
int SilenceLabelIndex();

class RecognizeCommands {
 public:
  RecognizeCommands();

  // `scores`: kCategoryCount values, 0..255 (probability * 256, clamped), of the inference on the
  // audio ending at `current_time_ms`. Times must be >= 0 and must not decrease (they are int32
  // milliseconds since the audio started, as in micro_speech: about 24 days of uptime). False
  // (after logging why) on bad input.
  bool ProcessLatestResults(const uint8_t* scores, int32_t current_time_ms,
                            const char** found_command, uint8_t* score, bool* is_new_command);

 private:
  struct Result {
    int32_t time_ms;
    uint8_t scores[kCategoryCount];
  };
  // Enough for one result per feature slice across the whole averaging window.
  static constexpr int kMaxResults = kAverageWindowDurationMs / kFeatureWindowStrideMs + 2;

  Result& FromFront(int offset);

  Result results_[kMaxResults];
  int front_index_;
  int size_;
  int previous_top_index_;
  int32_t previous_top_time_ms_;
  bool has_previous_top_;
};

#endif  // TFLM_KWS_RECOGNIZE_COMMANDS_H_
