#include "keyword_spotter.h"

#include <cstring>

KeywordSpotter::KeywordSpotter(KwsModel* model)
    : features_(), feature_provider_(features_), model_(model), pending_frames_(0) {}

bool KeywordSpotter::Begin() { return feature_provider_.Begin(); }

bool KeywordSpotter::Process(int64_t sample_count, SpotterResult* result) {
  result->inference_ran = false;
  int new_slices = 0;
  if (!feature_provider_.PopulateFeatureData(sample_count, &new_slices)) return false;
  if (new_slices == 0) return true;
  const int frames_per_call = model_->frames_per_call();
  if (frames_per_call == 0) return RunModel(features_, 0, result);
  if (new_slices >= kFeatureFrameCount) {
    // A whole window is new (the start, or the provider restarted after falling behind): the
    // model's past frames do not precede these.
    model_->ResetState();
    pending_frames_ = 0;
  }
  pending_frames_ += new_slices;
  if (pending_frames_ > kFeatureFrameCount) pending_frames_ = kFeatureFrameCount;
  // A command found by an earlier call of this Process() is the one reported.
  SpotterResult command;
  bool found = false;
  while (pending_frames_ >= frames_per_call) {
    const int oldest = kFeatureFrameCount - pending_frames_;  // first frame of the group
    pending_frames_ -= frames_per_call;
    if (!RunModel(features_ + oldest * kFeatureChannelCount, pending_frames_, result)) {
      return false;
    }
    if (result->is_new_command && !found) {
      command = *result;
      found = true;
    }
  }
  if (found) *result = command;
  return true;
}

bool KeywordSpotter::RunModel(const int8_t* features, int newer_frames, SpotterResult* result) {
  if (!model_->Invoke(features, result->scores)) return false;
  const int64_t end_sample =
      (feature_provider_.slices_computed() - 1 - newer_frames) * kFeatureStrideSamples +
      kFeatureWindowSamples;
  result->time_ms = static_cast<int32_t>(end_sample / kAudioSamplesPerMs);
  result->inference_ran = true;
  return recognizer_.ProcessLatestResults(result->scores, result->time_ms, &result->label,
                                          &result->score, &result->is_new_command);
}
