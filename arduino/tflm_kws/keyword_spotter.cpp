#include "keyword_spotter.h"

#include <cstring>

KeywordSpotter::KeywordSpotter(KwsModel* model)
    : features_(), feature_provider_(features_), model_(model) {}

bool KeywordSpotter::Begin() { return feature_provider_.Begin(); }

bool KeywordSpotter::Process(int64_t sample_count, SpotterResult* result) {
  result->inference_ran = false;
  int new_slices = 0;
  if (!feature_provider_.PopulateFeatureData(sample_count, &new_slices)) return false;
  if (new_slices == 0) return true;
  if (!model_->Invoke(features_, result->scores)) return false;
  const int64_t end_sample = (feature_provider_.slices_computed() - 1) * kFeatureStrideSamples +
                             kFeatureWindowSamples;
  result->time_ms = static_cast<int32_t>(end_sample / kAudioSamplesPerMs);
  result->inference_ran = true;
  return recognizer_.ProcessLatestResults(result->scores, result->time_ms, &result->label,
                                          &result->score, &result->is_new_command);
}
