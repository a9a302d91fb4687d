#include "recognize_commands.h"

#include <cstring>

#include "kws_log.h"

int SilenceLabelIndex() {
  for (int i = 0; i < kCategoryCount; ++i) {
    if (strcmp(kCategoryLabels[i], "_silence_") == 0) return i;
  }
  return -1;
}

RecognizeCommands::RecognizeCommands()
    : front_index_(0),
      size_(0),
      previous_top_index_(SilenceLabelIndex()),
      previous_top_time_ms_(0),
      has_previous_top_(false) {}

RecognizeCommands::Result& RecognizeCommands::FromFront(int offset) {
  return results_[(front_index_ + offset) % kMaxResults];
}

bool RecognizeCommands::ProcessLatestResults(const uint8_t* scores, int32_t current_time_ms,
                                             const char** found_command, uint8_t* score,
                                             bool* is_new_command) {
  // Non-negative, non-decreasing times keep every difference below in int32 range.
  if (current_time_ms < 0) {
    KwsLog("Result time %d ms is negative: times count from the start of the audio",
           static_cast<int>(current_time_ms));
    return false;
  }
  if (size_ > 0 && current_time_ms < FromFront(size_ - 1).time_ms) {
    KwsLog("Results must be fed in increasing time order, but received a timestamp of %d that "
           "was earlier than the previous one of %d",
           static_cast<int>(current_time_ms), static_cast<int>(FromFront(size_ - 1).time_ms));
    return false;
  }

  // Prune results too old for the averaging window, then append the latest.
  const int32_t time_limit = current_time_ms - kAverageWindowDurationMs;
  while (size_ > 0 && FromFront(0).time_ms < time_limit) {
    front_index_ = (front_index_ + 1) % kMaxResults;
    --size_;
  }
  if (size_ == kMaxResults) {  // results arrive faster than one per slice: drop the oldest
    front_index_ = (front_index_ + 1) % kMaxResults;
    --size_;
  }
  Result& latest = FromFront(size_);
  ++size_;
  latest.time_ms = current_time_ms;
  memcpy(latest.scores, scores, kCategoryCount);

  // Too few results, or too short a span, to trust the average yet.
  const int32_t samples_duration = current_time_ms - FromFront(0).time_ms;
  if (size_ < kMinimumCount || samples_duration < (kAverageWindowDurationMs / 4)) {
    *found_command = previous_top_index_ >= 0 ? kCategoryLabels[previous_top_index_]
                                              : kCategoryLabels[0];
    *score = 0;
    *is_new_command = false;
    return true;
  }

  int32_t average_scores[kCategoryCount] = {0};
  for (int offset = 0; offset < size_; ++offset) {
    const uint8_t* result_scores = FromFront(offset).scores;
    for (int i = 0; i < kCategoryCount; ++i) average_scores[i] += result_scores[i];
  }
  int current_top_index = 0;
  int32_t current_top_score = 0;
  for (int i = 0; i < kCategoryCount; ++i) {
    average_scores[i] /= size_;
    if (average_scores[i] > current_top_score) {
      current_top_score = average_scores[i];
      current_top_index = i;
    }
  }

  // A label that triggers again too soon after it last triggered is assumed to be the same
  // utterance; after "silence" anything may trigger at once.
  const bool suppressed = has_previous_top_ && previous_top_index_ != SilenceLabelIndex() &&
                          current_top_index == previous_top_index_ &&
                          (current_time_ms - previous_top_time_ms_) <= kSuppressionMs;
  if (current_top_score > kDetectionThreshold && !suppressed) {
    previous_top_index_ = current_top_index;
    previous_top_time_ms_ = current_time_ms;
    has_previous_top_ = true;
    *is_new_command = true;
  } else {
    *is_new_command = false;
  }
  *found_command = kCategoryLabels[current_top_index];
  *score = static_cast<uint8_t>(current_top_score);
  return true;
}
