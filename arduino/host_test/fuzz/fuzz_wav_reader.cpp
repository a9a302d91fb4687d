// libFuzzer target: the host tools' WAV reader on arbitrary bytes (no crash, no over-read; a
// rejected file says why).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "wav_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<unsigned char> bytes(data, data + size);
  std::vector<int16_t> samples;
  std::string error;
  if (!ParseWav(bytes, "fuzz.wav", 16000, &samples, &error) && error.empty()) abort();
  return 0;
}
