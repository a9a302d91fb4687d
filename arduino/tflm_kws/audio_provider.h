// Where audio comes from: the PDM microphone on the board (arduino_audio_provider.cpp) or a WAV
// file streamed in 20 ms steps on the host (host_test/host_audio_provider.cpp). 16-bit mono at
// kAudioSampleRate, addressed by absolute sample index since InitAudioRecording().
#ifndef TFLM_KWS_AUDIO_PROVIDER_H_
#define TFLM_KWS_AUDIO_PROVIDER_H_

#include <cstdint>

// Starts capture. False (after logging why) when the microphone cannot be started.
bool InitAudioRecording();

// Number of samples captured so far.
int64_t LatestAudioSampleCount();

// Copies samples [start, start + count) into `dest`; false when they are not (or no longer) held.
bool GetAudioSamples(int64_t start, int count, int16_t* dest);

#endif  // TFLM_KWS_AUDIO_PROVIDER_H_
