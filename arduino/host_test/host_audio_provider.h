// The host's stand-in for the PDM microphone: the test driver "captures" audio step by step, the
// feature provider reads it through audio_provider.h exactly as on the board.
#ifndef TFLM_KWS_HOST_TEST_HOST_AUDIO_PROVIDER_H_
#define TFLM_KWS_HOST_TEST_HOST_AUDIO_PROVIDER_H_

#include <cstdint>

// Forgets all audio: the next sample captured is sample 0 (as after a reset of the board).
void HostAudioReset();

// Appends `count` samples, as one PDM callback would.
void HostAudioCapture(const int16_t* samples, int count);

#endif  // TFLM_KWS_HOST_TEST_HOST_AUDIO_PROVIDER_H_
