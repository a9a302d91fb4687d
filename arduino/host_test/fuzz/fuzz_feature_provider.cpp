// libFuzzer target: ring buffer + feature provider fed arbitrary audio in arbitrary chunk sizes,
// falling behind by arbitrary amounts (no crash; slices only ever move forward).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "audio_provider.h"
#include "feature_provider.h"
#include "host_audio_provider.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int8_t features[kFeatureElementCount];
  HostAudioReset();
  FeatureProvider provider(features);
  if (!provider.Begin()) abort();
  size_t pos = 0;
  int64_t last_slices = 0;
  while (pos + 2 <= size) {
    // Two bytes: how many samples this "PDM callback" delivers (0..65535; beyond the ring's
    // capacity the oldest are lost, as on the board), then that many samples from the input.
    const size_t count = data[pos] | (data[pos + 1] << 8);
    pos += 2;
    std::vector<int16_t> chunk(count);
    for (size_t i = 0; i < count; ++i) {
      if (pos + 2 <= size) {
        int16_t v;
        memcpy(&v, data + pos, 2);
        chunk[i] = v;
        pos += 2;
      } else {
        chunk[i] = static_cast<int16_t>(i * 7919);
      }
    }
    HostAudioCapture(chunk.data(), static_cast<int>(count));
    int new_slices = 0;
    provider.PopulateFeatureData(LatestAudioSampleCount(), &new_slices);  // false is allowed
    if (new_slices < 0 || new_slices > kFeatureFrameCount) abort();
    if (provider.slices_computed() < last_slices) abort();
    last_slices = provider.slices_computed();
  }
  return 0;
}
