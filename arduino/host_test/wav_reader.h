// Reads 16-bit PCM mono WAV files at kAudioSampleRate (what the device's microphone delivers).
#ifndef TFLM_KWS_HOST_TEST_WAV_READER_H_
#define TFLM_KWS_HOST_TEST_WAV_READER_H_

#include <cstdint>
#include <string>
#include <vector>

// False with `error` naming the file and what is wrong.
bool ReadWav(const std::string& path, int expected_sample_rate, std::vector<int16_t>* samples,
             std::string* error);

// The same for a file's bytes already in memory (`path` only names it in errors).
bool ParseWav(const std::vector<unsigned char>& bytes, const std::string& path,
              int expected_sample_rate, std::vector<int16_t>* samples, std::string* error);

#endif  // TFLM_KWS_HOST_TEST_WAV_READER_H_
