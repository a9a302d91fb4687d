// The sketch's own footprint on the Cortex-M4 for `arm-none-eabi-size`: tflm_kws.ino's globals
// and calls (arena, ModelRunner, KeywordSpotter, the recognizer) linked with the Arduino
// library's TFLM and CMSIS-NN exactly as for the board, with the host audio provider standing in
// for the PDM one (the same AudioRingBuffer) and stdout for Serial. What the board adds on top
// (the Arduino core, mbed OS, the PDM driver) cannot be linked here.
#include <cstdint>
#include <cstdio>

#include "audio_provider.h"
#include "host_audio_provider.h"
#include "keyword_spotter.h"
#include "kws_log.h"
#include "model_data.h"
#include "model_runner.h"

namespace {
alignas(16) uint8_t g_tensor_arena[kTensorArenaSize];
ModelRunner g_model(g_tensor_arena, kTensorArenaSize);
KeywordSpotter g_spotter(&g_model);
}  // namespace

int main() {
  if (!g_model.Begin(g_model_data) || !g_spotter.Begin()) return 1;
  KwsLog("tflm_kws ready: %d labels, tensor arena %d of %d bytes used", kCategoryCount,
         static_cast<int>(g_model.arena_used_bytes()), kTensorArenaSize);
  int16_t silence[kAudioSampleRate / 50] = {};
  for (int step = 0; step < 100; ++step) {
    HostAudioCapture(silence, kAudioSampleRate / 50);
    SpotterResult result;
    if (!g_spotter.Process(LatestAudioSampleCount(), &result)) return 1;
    if (result.inference_ran && result.is_new_command) {
      KwsLog("Heard %s (%d) @%dms", result.label, result.score, static_cast<int>(result.time_ms));
    }
  }
  return 0;
}
