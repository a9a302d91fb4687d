// PDM microphone capture on the Nano 33 BLE Sense: 16 kHz mono. The PDM library double-buffers
// in DMA and calls onReceive for each filled half; the callback appends it to the ring buffer.
#if defined(ARDUINO) && !defined(ARDUINO_ARDUINO_NANO33BLE)
#define ARDUINO_EXCLUDE_CODE
#endif

#ifndef ARDUINO_EXCLUDE_CODE

#include <PDM.h>

#include "Arduino.h"
#include "audio_provider.h"
#include "audio_ring_buffer.h"
#include "kws_log.h"
#include "model_data.h"

namespace {
// About 1 s: the loop may fall this far behind (a slow inference) without losing audio.
constexpr int kAudioCaptureBufferSize = 16384;
// The Rev2 board's microphone outputs garbage for about 3 s after reset (ArduinoCore-mbed #674):
// drop it rather than let it reach the features.
constexpr uint32_t kMicrophoneSettleMs = 3000;
// gain: -20 dB (min) + 6.5 dB (13) + 3.2 dB (builtin) = -10.3 dB, as micro_speech
constexpr int kPdmGain = 13;

int16_t g_capture_storage[kAudioCaptureBufferSize];
AudioRingBuffer g_ring(g_capture_storage, kAudioCaptureBufferSize);
int16_t g_pdm_block[DEFAULT_PDM_BUFFER_SIZE / 2];

void CaptureSamples() {
  int bytes = PDM.available();
  if (bytes > static_cast<int>(sizeof(g_pdm_block))) bytes = sizeof(g_pdm_block);
  const int read = PDM.read(g_pdm_block, bytes);
  if (millis() < kMicrophoneSettleMs) return;
  g_ring.Write(g_pdm_block, read / 2);
}
}  // namespace

bool InitAudioRecording() {
  PDM.onReceive(CaptureSamples);
  if (!PDM.begin(1, kAudioSampleRate)) {
    KwsLog("PDM.begin(1, %d) failed", kAudioSampleRate);
    return false;
  }
  PDM.setGain(kPdmGain);
  if (millis() < kMicrophoneSettleMs) {
    KwsLog("Waiting for the microphone to settle (%d ms after reset)",
           static_cast<int>(kMicrophoneSettleMs));
  }
  return true;
}

int64_t LatestAudioSampleCount() { return g_ring.samples_written(); }

bool GetAudioSamples(int64_t start, int count, int16_t* dest) {
  return g_ring.Read(start, count, dest);
}

#endif  // ARDUINO_EXCLUDE_CODE
