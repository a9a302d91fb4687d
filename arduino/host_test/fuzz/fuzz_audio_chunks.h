// How the audio fuzz targets read their input: a sequence of "PDM callbacks", each two bytes
// giving how many samples arrive (0..65535; beyond the ring's capacity the oldest are lost, as on
// the board) and then that many int16 samples (a fixed pattern once the input runs out).
#ifndef TFLM_KWS_FUZZ_AUDIO_CHUNKS_H_
#define TFLM_KWS_FUZZ_AUDIO_CHUNKS_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

// The next chunk from data[*pos..size) into `chunk`; false when no chunk is left.
inline bool NextAudioChunk(const uint8_t* data, size_t size, size_t* pos,
                           std::vector<int16_t>* chunk) {
  if (*pos + 2 > size) return false;
  const size_t count = data[*pos] | (data[*pos + 1] << 8);
  *pos += 2;
  chunk->resize(count);
  for (size_t i = 0; i < count; ++i) {
    if (*pos + 2 <= size) {
      memcpy(&(*chunk)[i], data + *pos, 2);
      *pos += 2;
    } else {
      (*chunk)[i] = static_cast<int16_t>(i * 7919);
    }
  }
  return true;
}

#endif  // TFLM_KWS_FUZZ_AUDIO_CHUNKS_H_
