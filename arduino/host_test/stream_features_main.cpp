// kws_stream_features: the sketch's audio ring buffer + feature provider on long audio (no TFLM).
// Captures one WAV of any length in pseudo-random chunk sizes (as PDM callbacks and a main loop
// that falls behind by varying amounts would), calls PopulateFeatureData() after each chunk, and
// writes one binary record per call that added slices:
//   int64 sample_count, int64 slices_computed, int32 new_slices, int8 window[kFeatureElementCount]
// (little-endian host order). tests/test_arduino_sketch.py checks every window against Python.
// Usage: kws_stream_features --out=FILE [--seed=N] [--max_chunk=SAMPLES] [--big_every=N] file.wav
//   --max_chunk: chunks are 1..max_chunk samples (default 2000: 0 to 7 pending slices per call);
//   --big_every: every N-th chunk is instead 0.9..1.0 s long (more than a window pending: the
//   provider restarts its frontend); 0 (default) never.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "audio_provider.h"
#include "feature_provider.h"
#include "host_audio_provider.h"
#include "wav_reader.h"

namespace {

// A small deterministic generator (the same on every platform, unlike rand()).
uint32_t NextRandom(uint64_t* state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return static_cast<uint32_t>(*state >> 33);
}

bool ParseInt(const char* text, const char* flag, long* value) {
  char* end = nullptr;
  *value = strtol(text, &end, 10);
  if (end == text || *end != '\0' || *value < 0) {
    fprintf(stderr, "kws_stream_features: %s wants a non-negative integer, got '%s'\n", flag, text);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path, wav_path;
  long seed = 1, max_chunk = 2000, big_every = 0;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strncmp(arg, "--out=", 6) == 0) {
      out_path = arg + 6;
    } else if (strncmp(arg, "--seed=", 7) == 0) {
      if (!ParseInt(arg + 7, "--seed", &seed)) return 2;
    } else if (strncmp(arg, "--max_chunk=", 12) == 0) {
      if (!ParseInt(arg + 12, "--max_chunk", &max_chunk)) return 2;
    } else if (strncmp(arg, "--big_every=", 12) == 0) {
      if (!ParseInt(arg + 12, "--big_every", &big_every)) return 2;
    } else if (arg[0] == '-') {
      fprintf(stderr, "kws_stream_features: unknown flag %s\n", arg);
      return 2;
    } else if (wav_path.empty()) {
      wav_path = arg;
    } else {
      fprintf(stderr, "kws_stream_features: one WAV file only\n");
      return 2;
    }
  }
  if (out_path.empty() || wav_path.empty() || max_chunk < 1) {
    fprintf(stderr, "usage: kws_stream_features --out=FILE [--seed=N] [--max_chunk=SAMPLES>=1] "
                    "[--big_every=N] file.wav\n");
    return 2;
  }
  std::vector<int16_t> audio;
  std::string error;
  if (!ReadWav(wav_path, kAudioSampleRate, &audio, &error)) {
    fprintf(stderr, "kws_stream_features: %s\n", error.c_str());
    return 1;
  }
  FILE* out = fopen(out_path.c_str(), "wb");
  if (out == nullptr) {
    fprintf(stderr, "kws_stream_features: cannot write %s\n", out_path.c_str());
    return 1;
  }
  static int8_t features[kFeatureElementCount];
  HostAudioReset();
  FeatureProvider provider(features);
  if (!provider.Begin()) return 1;
  uint64_t state = static_cast<uint64_t>(seed) * 2654435761ULL + 1;
  size_t pos = 0;
  long chunk_index = 0;
  while (pos < audio.size()) {
    ++chunk_index;
    size_t count;
    if (big_every > 0 && chunk_index % big_every == 0) {
      count = kAudioSampleRate * 9 / 10 + NextRandom(&state) % (kAudioSampleRate / 10 + 1);
    } else {
      count = 1 + NextRandom(&state) % static_cast<uint32_t>(max_chunk);
    }
    if (count > audio.size() - pos) count = audio.size() - pos;
    HostAudioCapture(audio.data() + pos, static_cast<int>(count));
    pos += count;
    const int64_t sample_count = LatestAudioSampleCount();
    int new_slices = 0;
    if (!provider.PopulateFeatureData(sample_count, &new_slices)) {
      fprintf(stderr, "kws_stream_features: PopulateFeatureData failed at sample %lld\n",
              static_cast<long long>(sample_count));
      fclose(out);
      return 1;
    }
    if (new_slices == 0) continue;
    const int64_t slices = provider.slices_computed();
    const int32_t added = new_slices;
    fwrite(&sample_count, sizeof(sample_count), 1, out);
    fwrite(&slices, sizeof(slices), 1, out);
    fwrite(&added, sizeof(added), 1, out);
    fwrite(features, 1, kFeatureElementCount, out);
  }
  if (fclose(out) != 0) {
    fprintf(stderr, "kws_stream_features: error writing %s\n", out_path.c_str());
    return 1;
  }
  return 0;
}
