// kws_spotter_replay: the sketch's KeywordSpotter (feature provider + model + recognizer) on a WAV
// without TFLM. The model is a stand-in that records each feature window it is given and answers
// with the real model's raw int8 outputs for those windows, computed beforehand by the tflite_micro
// runtime (tests/test_arduino_sketch.py runs it twice: once to get the windows, once to replay).
// Usage: kws_spotter_replay --windows_out=FILE [--outputs=FILE --output_scale=S
//        --output_zero_point=Z [--probability]] [--frames_per_call=N] [--chunk_ms=M] file.wav
//   --windows_out: every window passed to the model, kFeatureElementCount int8 each (with
//   --frames_per_call=N, the stand-in is a streaming model: the N frames of each call);
//   --outputs: kCategoryCount int8 raw outputs per inference, turned into scores by
//   model_scores.cpp as ModelRunner does; without it the scores are zero;
//   --chunk_ms: audio captured between two Process() calls (default 20, one slice).
// stderr ends with "resets <n>": how often the spotter reset the stand-in's state.
// stdout, one line per inference: <time_ms> <label> <score> <is_new 0|1> <kCategoryCount scores>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "audio_provider.h"
#include "host_audio_provider.h"
#include "keyword_spotter.h"
#include "kws_model.h"
#include "model_scores.h"
#include "wav_reader.h"

namespace {

class ReplayModel : public KwsModel {
 public:
  ReplayModel(FILE* windows_out, FILE* outputs, float scale, int zero_point, bool probability,
              int frames_per_call)
      : windows_out_(windows_out), outputs_(outputs), scale_(scale), zero_point_(zero_point),
        probability_(probability), frames_per_call_(frames_per_call) {}

  int frames_per_call() const override { return frames_per_call_; }
  void ResetState() override { ++resets_; }
  int resets() const { return resets_; }

  bool Invoke(const int8_t* features, uint8_t* scores) override {
    const size_t count = frames_per_call_ > 0
                             ? static_cast<size_t>(frames_per_call_) * kFeatureChannelCount
                             : static_cast<size_t>(kFeatureElementCount);
    if (fwrite(features, 1, count, windows_out_) != count) {
      fprintf(stderr, "kws_spotter_replay: cannot write the window\n");
      return false;
    }
    if (outputs_ == nullptr) {
      memset(scores, 0, kCategoryCount);
      return true;
    }
    int8_t output[kCategoryCount];
    if (fread(output, 1, kCategoryCount, outputs_) != kCategoryCount) {
      fprintf(stderr, "kws_spotter_replay: --outputs has fewer rows than inferences\n");
      return false;
    }
    OutputToScores(output, scale_, zero_point_, probability_, scores);
    return true;
  }

 private:
  FILE* windows_out_;
  FILE* outputs_;
  float scale_;
  int zero_point_;
  bool probability_;
  int frames_per_call_;
  int resets_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string windows_path, outputs_path, wav_path;
  float scale = 0.0f;
  int zero_point = 0;
  bool probability = false;
  int frames_per_call = 0;
  int chunk_ms = kFeatureWindowStrideMs;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strncmp(arg, "--windows_out=", 14) == 0) {
      windows_path = arg + 14;
    } else if (strncmp(arg, "--outputs=", 10) == 0) {
      outputs_path = arg + 10;
    } else if (strncmp(arg, "--output_scale=", 15) == 0) {
      scale = strtof(arg + 15, nullptr);
    } else if (strncmp(arg, "--output_zero_point=", 20) == 0) {
      zero_point = atoi(arg + 20);
    } else if (strcmp(arg, "--probability") == 0) {
      probability = true;
    } else if (strncmp(arg, "--frames_per_call=", 18) == 0) {
      frames_per_call = atoi(arg + 18);
    } else if (strncmp(arg, "--chunk_ms=", 11) == 0) {
      chunk_ms = atoi(arg + 11);
    } else if (arg[0] == '-') {
      fprintf(stderr, "kws_spotter_replay: unknown flag %s\n", arg);
      return 2;
    } else {
      wav_path = arg;
    }
  }
  if (windows_path.empty() || wav_path.empty() || (!outputs_path.empty() && !(scale > 0.0f)) ||
      frames_per_call < 0 || frames_per_call > kFeatureFrameCount || chunk_ms < 1) {
    fprintf(stderr, "usage: kws_spotter_replay --windows_out=FILE [--outputs=FILE "
                    "--output_scale=S>0 --output_zero_point=Z [--probability]] "
                    "[--frames_per_call=0..%d] [--chunk_ms=M>0] file.wav\n", kFeatureFrameCount);
    return 2;
  }
  std::vector<int16_t> audio;
  std::string error;
  if (!ReadWav(wav_path, kAudioSampleRate, &audio, &error)) {
    fprintf(stderr, "kws_spotter_replay: %s\n", error.c_str());
    return 1;
  }
  FILE* windows = fopen(windows_path.c_str(), "wb");
  FILE* outputs = outputs_path.empty() ? nullptr : fopen(outputs_path.c_str(), "rb");
  if (windows == nullptr || (!outputs_path.empty() && outputs == nullptr)) {
    fprintf(stderr, "kws_spotter_replay: cannot open %s\n",
            windows == nullptr ? windows_path.c_str() : outputs_path.c_str());
    return 1;
  }
  ReplayModel model(windows, outputs, scale, zero_point, probability, frames_per_call);
  HostAudioReset();
  KeywordSpotter spotter(&model);
  if (!spotter.Begin()) return 1;
  SpotterResult result;
  const size_t chunk = static_cast<size_t>(chunk_ms) * kAudioSamplesPerMs;
  for (size_t pos = 0; pos < audio.size(); pos += chunk) {
    const size_t count = std::min<size_t>(chunk, audio.size() - pos);
    HostAudioCapture(audio.data() + pos, static_cast<int>(count));
    if (!spotter.Process(LatestAudioSampleCount(), &result)) return 1;
    if (!result.inference_ran) continue;
    printf("%d %s %d %d", static_cast<int>(result.time_ms), result.label, result.score,
           result.is_new_command ? 1 : 0);
    for (int i = 0; i < kCategoryCount; ++i) printf(" %d", result.scores[i]);
    printf("\n");
  }
  fclose(windows);
  if (outputs != nullptr) fclose(outputs);
  fprintf(stderr, "resets %d\n", model.resets());
  return 0;
}
