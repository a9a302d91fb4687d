#include "host_audio_provider.h"

#include "audio_provider.h"
#include "audio_ring_buffer.h"

namespace {
constexpr int kAudioCaptureBufferSize = 16384;  // as arduino_audio_provider.cpp
int16_t g_capture_storage[kAudioCaptureBufferSize];
AudioRingBuffer g_ring(g_capture_storage, kAudioCaptureBufferSize);
}  // namespace

void HostAudioReset() { g_ring.Clear(); }

void HostAudioCapture(const int16_t* samples, int count) {
  while (count > 0) {
    const int chunk = count < kAudioCaptureBufferSize ? count : kAudioCaptureBufferSize;
    g_ring.Write(samples, chunk);
    samples += chunk;
    count -= chunk;
  }
}

bool InitAudioRecording() { return true; }

int64_t LatestAudioSampleCount() { return g_ring.samples_written(); }

bool GetAudioSamples(int64_t start, int count, int16_t* dest) {
  return g_ring.Read(start, count, dest);
}
