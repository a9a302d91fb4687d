// kws_features: the sketch's feature provider alone (no TFLM). Streams each WAV in 20 ms steps
// from a fresh frontend state, as the board does after reset, and writes the final feature window
// to <dump_dir>/<file name>.json. Usage: kws_features --dump_dir=DIR file.wav...
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dump_json.h"
#include "feature_provider.h"
#include "host_audio_provider.h"
#include "audio_provider.h"
#include "wav_reader.h"

int main(int argc, char** argv) {
  std::string dump_dir;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], "--dump_dir=", 11) == 0) {
      dump_dir = argv[i] + 11;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "kws_features: unknown flag %s\n", argv[i]);
      return 2;
    } else {
      files.push_back(argv[i]);
    }
  }
  if (dump_dir.empty() || files.empty()) {
    fprintf(stderr, "usage: kws_features --dump_dir=DIR file.wav...\n");
    return 2;
  }
  static int8_t features[kFeatureElementCount];
  for (const std::string& path : files) {
    std::vector<int16_t> audio;
    std::string error;
    if (!ReadWav(path, kAudioSampleRate, &audio, &error)) {
      fprintf(stderr, "kws_features: %s\n", error.c_str());
      return 1;
    }
    HostAudioReset();
    FeatureProvider provider(features);
    if (!provider.Begin()) return 1;
    for (size_t pos = 0; pos < audio.size(); pos += kFeatureStrideSamples) {
      const int count = static_cast<int>(std::min<size_t>(kFeatureStrideSamples, audio.size() - pos));
      HostAudioCapture(audio.data() + pos, count);
      int new_slices = 0;
      if (!provider.PopulateFeatureData(LatestAudioSampleCount(), &new_slices)) return 1;
    }
    const std::string out_path = dump_dir + "/" + BaseName(path) + ".json";
    FILE* out = fopen(out_path.c_str(), "w");
    if (out == nullptr) {
      fprintf(stderr, "kws_features: cannot write %s\n", out_path.c_str());
      return 1;
    }
    fprintf(out, "{\"file\": \"%s\", \"slices\": %d, ", BaseName(path).c_str(),
            static_cast<int>(provider.slices_computed()));
    WriteJsonArray(out, "features", features, kFeatureElementCount);
    fprintf(out, "}\n");
    fclose(out);
  }
  return 0;
}
