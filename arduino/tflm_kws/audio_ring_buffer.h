// The last few hundred milliseconds of microphone audio, addressed by absolute sample index.
// One writer (the PDM interrupt on the board) appends; one reader (the feature provider) copies out.
#ifndef TFLM_KWS_AUDIO_RING_BUFFER_H_
#define TFLM_KWS_AUDIO_RING_BUFFER_H_

#include <cstdint>

class AudioRingBuffer {
 public:
  // `storage` holds `capacity` samples and must outlive the buffer.
  AudioRingBuffer(int16_t* storage, int capacity);

  // Writer side: appends `count` samples (count <= capacity).
  void Write(const int16_t* samples, int count);

  // Total samples written since construction (or Clear()).
  int64_t samples_written() const;

  int capacity() const { return capacity_; }

  // Copies samples [start, start + count) to `dest`. False when they have not all been written yet,
  // or are (or became, during the copy) older than `capacity` samples: the reader fell behind.
  bool Read(int64_t start, int count, int16_t* dest) const;

  void Clear();

 private:
  int16_t* storage_;
  int capacity_;
  // Written by the interrupt, read by the main loop. A 64-bit store is two 32-bit stores on
  // Cortex-M4, so samples_written() reads until two reads agree.
  volatile int64_t written_;
};

#endif  // TFLM_KWS_AUDIO_RING_BUFFER_H_
