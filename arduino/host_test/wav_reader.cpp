#include "wav_reader.h"

#include <cstring>
#include <fstream>
#include <iterator>

namespace {
uint32_t Le32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t Le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
}  // namespace

bool ReadWav(const std::string& path, int expected_sample_rate, std::vector<int16_t>* samples,
             std::string* error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    *error = path + ": cannot open";
    return false;
  }
  const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(file)),
                                         std::istreambuf_iterator<char>());
  return ParseWav(bytes, path, expected_sample_rate, samples, error);
}

bool ParseWav(const std::vector<unsigned char>& bytes, const std::string& path,
              int expected_sample_rate, std::vector<int16_t>* samples, std::string* error) {
  if (bytes.size() < 12 || memcmp(bytes.data(), "RIFF", 4) != 0 ||
      memcmp(bytes.data() + 8, "WAVE", 4) != 0) {
    *error = path + ": not a RIFF/WAVE file";
    return false;
  }
  bool have_format = false;
  size_t pos = 12;
  while (pos + 8 <= bytes.size()) {
    const unsigned char* chunk = bytes.data() + pos;
    const uint32_t size = Le32(chunk + 4);
    const size_t body = pos + 8;
    if (body + size > bytes.size()) {
      *error = path + ": truncated chunk";
      return false;
    }
    if (memcmp(chunk, "fmt ", 4) == 0) {
      if (size < 16) {
        *error = path + ": fmt chunk too short";
        return false;
      }
      const uint16_t format = Le16(bytes.data() + body);
      const uint16_t channels = Le16(bytes.data() + body + 2);
      const uint32_t rate = Le32(bytes.data() + body + 4);
      const uint16_t bits = Le16(bytes.data() + body + 14);
      if (format != 1 || channels != 1 || bits != 16 ||
          rate != static_cast<uint32_t>(expected_sample_rate)) {
        *error = path + ": need 16-bit PCM mono at " + std::to_string(expected_sample_rate) +
                 " Hz, got format " + std::to_string(format) + ", " + std::to_string(channels) +
                 " channel(s), " + std::to_string(bits) + " bits, " + std::to_string(rate) + " Hz";
        return false;
      }
      have_format = true;
    } else if (memcmp(chunk, "data", 4) == 0) {
      if (!have_format) {
        *error = path + ": data chunk before fmt chunk";
        return false;
      }
      samples->resize(size / 2);
      for (size_t i = 0; i < samples->size(); ++i) {
        (*samples)[i] = static_cast<int16_t>(Le16(bytes.data() + body + 2 * i));
      }
      return true;
    }
    pos = body + size + (size & 1);
  }
  *error = path + ": no data chunk";
  return false;
}
