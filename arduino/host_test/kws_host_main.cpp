// kws_host: the sketch's pipeline on a PC. Each WAV (16 kHz mono 16-bit) is streamed in 20 ms steps
// through the same feature provider -> model -> recognizer code as the board, from a fresh start.
//
//   kws_host [--expected=FILE] [--lead_ms=N] [--tail_ms=N] [--arena_bytes=N] file.wav...
//     Prints per file the detections, the top per-inference scores, the arena bytes used and the
//     host time per step. --expected: lines "<file name> <label>" ("_silence_" = no detection);
//     exits 1 when a file's strongest detection differs. Silence of lead_ms/tail_ms (default
//     1000) surrounds each file so the averaging window sees the whole word.
//   kws_host --dump_dir=DIR file.wav...
//     Streams each clip alone and writes DIR/<file name>.json: the feature window, the model input
//     and the raw output once the whole clip has been seen.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "audio_provider.h"
#include "command_responder.h"
#include "dump_json.h"
#include "host_audio_provider.h"
#include "keyword_spotter.h"
#include "model_runner.h"
#include "model_data.h"
#include "recognize_commands.h"
#include "wav_reader.h"

namespace {

struct Options {
  std::string expected_path;
  std::string dump_dir;
  int lead_ms = 1000;
  int tail_ms = 1000;
  size_t arena_bytes = kTensorArenaSize;
  std::vector<std::string> files;
};

bool ParseInt(const char* text, long* value) {
  char* end = nullptr;
  *value = strtol(text, &end, 10);
  return end != text && *end == '\0' && *value >= 0;
}

bool ParseArgs(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string key = arg.substr(0, eq);
    const char* value = eq == std::string::npos ? "" : argv[i] + eq + 1;
    long number = 0;
    if (key == "--expected") {
      options->expected_path = value;
    } else if (key == "--dump_dir") {
      options->dump_dir = value;
    } else if (key == "--lead_ms" || key == "--tail_ms" || key == "--arena_bytes") {
      if (!ParseInt(value, &number)) {
        fprintf(stderr, "kws_host: %s needs a non-negative integer, got '%s'\n", key.c_str(), value);
        return false;
      }
      if (key == "--lead_ms") options->lead_ms = static_cast<int>(number);
      if (key == "--tail_ms") options->tail_ms = static_cast<int>(number);
      if (key == "--arena_bytes") options->arena_bytes = static_cast<size_t>(number);
    } else if (arg[0] == '-') {
      fprintf(stderr, "kws_host: unknown flag %s\n", arg.c_str());
      return false;
    } else {
      options->files.push_back(arg);
    }
  }
  if (options->files.empty()) {
    fprintf(stderr, "usage: kws_host [--expected=FILE] [--dump_dir=DIR] [--lead_ms=N] "
                    "[--tail_ms=N] [--arena_bytes=N] file.wav...\n");
    return false;
  }
  return true;
}

bool ReadExpected(const std::string& path, std::map<std::string, std::string>* expected) {
  std::ifstream in(path);
  if (!in) {
    fprintf(stderr, "kws_host: --expected=%s: cannot open\n", path.c_str());
    return false;
  }
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::istringstream fields(line);
    std::string file, label, extra;
    if (!(fields >> file)) continue;  // blank line
    if (!(fields >> label) || (fields >> extra)) {
      fprintf(stderr, "kws_host: %s:%d: want '<file name> <label>', got '%s'\n", path.c_str(),
              number, line.c_str());
      return false;
    }
    const bool known = std::any_of(kCategoryLabels, kCategoryLabels + kCategoryCount,
                                   [&](const char* l) { return label == l; });
    if (!known) {
      fprintf(stderr, "kws_host: %s:%d: '%s' is not one of the model's labels\n", path.c_str(),
              number, label.c_str());
      return false;
    }
    (*expected)[BaseName(file)] = label;
  }
  return true;
}

// The sketch's model and spotter, as tflm_kws.ino wires them.
struct Device {
  Device(uint8_t* arena, size_t arena_bytes) : model(arena, arena_bytes), spotter(&model) {}
  ModelRunner model;
  KeywordSpotter spotter;
};

// A fresh device per file: the board after reset.
std::unique_ptr<Device> StartDevice(uint8_t* arena, size_t arena_bytes) {
  HostAudioReset();
  std::unique_ptr<Device> device(new Device(arena, arena_bytes));
  if (!device->model.Begin(g_model_data) || !device->spotter.Begin()) return nullptr;
  return device;
}

bool Dump(const Options& options, const std::vector<int16_t>& audio, const std::string& path,
          uint8_t* arena) {
  std::unique_ptr<Device> device = StartDevice(arena, options.arena_bytes);
  if (!device) return false;
  SpotterResult result;
  for (size_t pos = 0; pos < audio.size(); pos += kFeatureStrideSamples) {
    const int count = static_cast<int>(std::min<size_t>(kFeatureStrideSamples, audio.size() - pos));
    HostAudioCapture(audio.data() + pos, count);
    if (!device->spotter.Process(LatestAudioSampleCount(), &result)) return false;
  }
  // The whole window's model input (for a streaming model: what its calls took, frame by frame).
  static int8_t input[kFeatureElementCount];
  device->model.QuantizeFeatures(device->spotter.features(), kFeatureFrameCount, input);
  const std::string out_path = options.dump_dir + "/" + BaseName(path) + ".json";
  FILE* out = fopen(out_path.c_str(), "w");
  if (out == nullptr) {
    fprintf(stderr, "kws_host: cannot write %s\n", out_path.c_str());
    return false;
  }
  fprintf(out, "{\"file\": \"%s\", \"slices\": %d, \"arena_used_bytes\": %d, ",
          BaseName(path).c_str(), static_cast<int>(device->spotter.feature_provider().slices_computed()),
          static_cast<int>(device->model.arena_used_bytes()));
  WriteJsonArray(out, "features", device->spotter.features(), kFeatureElementCount);
  fprintf(out, ", ");
  WriteJsonArray(out, "input", input, kFeatureElementCount);
  fprintf(out, ", ");
  WriteJsonArray(out, "output", device->model.output_data(), kCategoryCount);
  fprintf(out, ", ");
  WriteJsonArray(out, "scores", result.scores, kCategoryCount);
  fprintf(out, ", \"output_scale\": %.9g, \"output_zero_point\": %d}\n",
          device->model.output_scale(), device->model.output_zero_point());
  fclose(out);
  return true;
}

// Streams one file; returns the strongest detection's label ("_silence_" when none), or "" on error.
std::string Detect(const Options& options, const std::vector<int16_t>& audio,
                   const std::string& path, uint8_t* arena) {
  std::unique_ptr<Device> device = StartDevice(arena, options.arena_bytes);
  if (!device) return "";
  std::vector<int16_t> stream(static_cast<size_t>(options.lead_ms) * kAudioSamplesPerMs, 0);
  stream.insert(stream.end(), audio.begin(), audio.end());
  stream.resize(stream.size() + static_cast<size_t>(options.tail_ms) * kAudioSamplesPerMs, 0);

  printf("%s\n", path.c_str());
  const int silence = SilenceLabelIndex();
  std::string best_label = silence >= 0 ? kCategoryLabels[silence] : "_silence_";
  int best_score = -1;
  std::string detected;
  uint8_t top_scores[kCategoryCount] = {0};
  int inferences = 0;
  double total_us = 0.0;
  SpotterResult result;
  for (size_t pos = 0; pos < stream.size(); pos += kFeatureStrideSamples) {
    const int count = static_cast<int>(std::min<size_t>(kFeatureStrideSamples, stream.size() - pos));
    HostAudioCapture(stream.data() + pos, count);
    const auto start = std::chrono::steady_clock::now();
    const bool ok = device->spotter.Process(LatestAudioSampleCount(), &result);
    total_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    if (!ok) return "";
    if (!result.inference_ran) continue;
    ++inferences;
    for (int i = 0; i < kCategoryCount; ++i) top_scores[i] = std::max(top_scores[i], result.scores[i]);
    RespondToCommand(result.time_ms, result.label, result.score, result.is_new_command);
    if (result.is_new_command && strcmp(result.label, kCategoryLabels[silence >= 0 ? silence : 0]) != 0) {
      detected += (detected.empty() ? "" : ",") + std::string(result.label);
      if (result.score > best_score) {
        best_score = result.score;
        best_label = result.label;
      }
    }
  }
  std::vector<int> order(kCategoryCount);
  for (int i = 0; i < kCategoryCount; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return top_scores[a] > top_scores[b]; });
  printf("  detected: %s\n", detected.empty() ? "(none)" : detected.c_str());
  printf("  top scores:");
  for (int i = 0; i < std::min(3, kCategoryCount); ++i) {
    printf(" %s=%d", kCategoryLabels[order[i]], top_scores[order[i]]);
  }
  printf("\n  arena used: %d of %d bytes\n", static_cast<int>(device->model.arena_used_bytes()),
         static_cast<int>(options.arena_bytes));
  printf("  inferences: %d, host time per step (features + model + recognizer): %.1f us\n",
         inferences, inferences ? total_us / inferences : 0.0);
  return best_label;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) return 2;
  std::map<std::string, std::string> expected;
  if (!options.expected_path.empty() && !ReadExpected(options.expected_path, &expected)) return 2;
  std::vector<uint8_t> arena_storage(options.arena_bytes + 16);
  uint8_t* arena = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(arena_storage.data()) + 15) & ~static_cast<uintptr_t>(15));

  int mismatches = 0;
  for (const std::string& path : options.files) {
    std::vector<int16_t> audio;
    std::string error;
    if (!ReadWav(path, kAudioSampleRate, &audio, &error)) {
      fprintf(stderr, "kws_host: %s\n", error.c_str());
      return 2;
    }
    if (!options.dump_dir.empty()) {
      if (!Dump(options, audio, path, arena)) return 1;
      continue;
    }
    const std::string label = Detect(options, audio, path, arena);
    if (label.empty()) {
      RespondToError("setup or processing failed (see the message above)");
      return 1;
    }
    if (!options.expected_path.empty()) {
      const auto it = expected.find(BaseName(path));
      if (it == expected.end()) {
        fprintf(stderr, "kws_host: %s is not listed in %s\n", BaseName(path).c_str(),
                options.expected_path.c_str());
        return 2;
      }
      const bool match = it->second == label;
      printf("  expected %s: %s\n", it->second.c_str(), match ? "ok" : "MISMATCH");
      mismatches += match ? 0 : 1;
    }
  }
  if (mismatches > 0) {
    printf("%d file(s) did not match the expected labels\n", mismatches);
    return 1;
  }
  return 0;
}
