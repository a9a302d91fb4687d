// libFuzzer target: the keyword spotter (ring buffer + feature provider + model calls +
// recognizer) with a stand-in model of any frames_per_call (0 = whole window, 1..49 streaming),
// audio in arbitrary chunk sizes (fuzz_audio_chunks.h). Checks: every call reads inside the feature window; a streaming
// model gets every slice once and in order between resets (at most frames_per_call - 1 waiting).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "audio_provider.h"
#include "fuzz_audio_chunks.h"
#include "host_audio_provider.h"
#include "keyword_spotter.h"
#include "kws_model.h"

namespace {

class CheckingModel : public KwsModel {
 public:
  explicit CheckingModel(int frames_per_call) : frames_per_call_(frames_per_call) {}
  void Attach(const KeywordSpotter* spotter) { spotter_ = spotter; }
  int frames_per_call() const override { return frames_per_call_; }
  // The spotter resets when a whole window is new, then feeds that window's frames.
  void ResetState() override {
    frames_since_reset_ = 0;
    reset_slice_ = Slices() - kFeatureFrameCount;
  }
  bool Invoke(const int8_t* features, uint8_t* scores) override {
    const int8_t* begin = spotter_->features();
    const int frames = frames_per_call_ > 0 ? frames_per_call_ : kFeatureFrameCount;
    if (features < begin ||
        features + frames * kFeatureChannelCount > begin + kFeatureElementCount) {
      abort();
    }
    frames_since_reset_ += frames_per_call_;
    for (int i = 0; i < kCategoryCount; ++i) scores[i] = static_cast<uint8_t>(features[i]);
    return true;
  }
  // Streaming: slices computed since the last reset = frames given + those still waiting.
  void Check() const {
    if (frames_per_call_ == 0) return;
    const int64_t waiting = Slices() - reset_slice_ - frames_since_reset_;
    if (waiting < 0 || waiting >= frames_per_call_) abort();
  }

 private:
  int64_t Slices() const { return spotter_->feature_provider().slices_computed(); }
  const KeywordSpotter* spotter_ = nullptr;
  int frames_per_call_;
  int64_t frames_since_reset_ = 0;
  int64_t reset_slice_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  HostAudioReset();
  CheckingModel model(data[0] % (kFeatureFrameCount + 1));
  KeywordSpotter spotter(&model);
  model.Attach(&spotter);
  if (!spotter.Begin()) abort();
  size_t pos = 1;
  std::vector<int16_t> chunk;
  while (NextAudioChunk(data, size, &pos, &chunk)) {
    HostAudioCapture(chunk.data(), static_cast<int>(chunk.size()));
    SpotterResult result;
    if (!spotter.Process(LatestAudioSampleCount(), &result)) continue;  // false is allowed
    model.Check();
  }
  return 0;
}
