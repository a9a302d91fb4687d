// libFuzzer target: ring buffer + feature provider fed arbitrary audio in arbitrary chunk sizes,
// falling behind by arbitrary amounts (no crash; slices only ever move forward).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "audio_provider.h"
#include "feature_provider.h"
#include "fuzz_audio_chunks.h"
#include "host_audio_provider.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int8_t features[kFeatureElementCount];
  HostAudioReset();
  FeatureProvider provider(features);
  if (!provider.Begin()) abort();
  size_t pos = 0;
  int64_t last_slices = 0;
  std::vector<int16_t> chunk;
  while (NextAudioChunk(data, size, &pos, &chunk)) {
    HostAudioCapture(chunk.data(), static_cast<int>(chunk.size()));
    int new_slices = 0;
    provider.PopulateFeatureData(LatestAudioSampleCount(), &new_slices);  // false is allowed
    if (new_slices < 0 || new_slices > kFeatureFrameCount) abort();
    if (provider.slices_computed() < last_slices) abort();
    last_slices = provider.slices_computed();
  }
  return 0;
}
