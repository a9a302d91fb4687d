// Keyword spotting on the Arduino Nano 33 BLE Sense: PDM microphone -> TFLM microfrontend ->
// int8 model (model_data.cc, written by `python -m conversion.convert --arduino_dir`) -> recognizer
// -> RGB LED and a Serial line per command. See docs/arduino.md.
#include <TensorFlowLite.h>

#include "audio_provider.h"
#include "command_responder.h"
#include "keyword_spotter.h"
#include "kws_log.h"
#include "model_data.h"
#include "model_runner.h"
#include "tensorflow/lite/micro/system_setup.h"

namespace {
alignas(16) uint8_t g_tensor_arena[kTensorArenaSize];
ModelRunner g_model(g_tensor_arena, kTensorArenaSize);
KeywordSpotter g_spotter(&g_model);
const char* g_setup_error = nullptr;
}  // namespace

void setup() {
  tflite::InitializeTarget();  // Serial; waits up to 4 s for a monitor to connect
  if (!g_model.Begin(g_model_data) || !g_spotter.Begin()) {
    g_setup_error = "model or feature setup failed (see the message above)";
    return;
  }
  if (!InitAudioRecording()) {
    g_setup_error = "microphone setup failed";
    return;
  }
  KwsLog("tflm_kws ready: %d labels, tensor arena %d of %d bytes used", kCategoryCount,
         static_cast<int>(g_model.arena_used_bytes()), kTensorArenaSize);
}

void loop() {
  if (g_setup_error != nullptr) {
    RespondToError(g_setup_error);
    return;
  }
  SpotterResult result;
  if (!g_spotter.Process(LatestAudioSampleCount(), &result)) return;  // logged; keep listening
  if (result.inference_ran) {
    RespondToCommand(result.time_ms, result.label, result.score, result.is_new_command);
  }
}
