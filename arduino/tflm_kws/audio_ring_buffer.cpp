#include "audio_ring_buffer.h"

AudioRingBuffer::AudioRingBuffer(int16_t* storage, int capacity)
    : storage_(storage), capacity_(capacity), written_(0) {}

void AudioRingBuffer::Write(const int16_t* samples, int count) {
  int64_t written = written_;
  int index = static_cast<int>(written % capacity_);
  for (int i = 0; i < count; ++i) {
    storage_[index] = samples[i];
    if (++index == capacity_) index = 0;
  }
  // Publish only after the samples are in place.
  written_ = written + count;
}

int64_t AudioRingBuffer::samples_written() const {
  int64_t first = written_;
  int64_t second = written_;
  // A torn read differs from the value read after it; the interrupt cannot fire twice in between.
  while (first != second) {
    first = second;
    second = written_;
  }
  return first;
}

bool AudioRingBuffer::Read(int64_t start, int count, int16_t* dest) const {
  if (start < 0 || count < 0 || count > capacity_) return false;
  const int64_t end = start + count;
  if (end > samples_written() || samples_written() - start > capacity_) return false;
  int index = static_cast<int>(start % capacity_);
  for (int i = 0; i < count; ++i) {
    dest[i] = storage_[index];
    if (++index == capacity_) index = 0;
  }
  // The writer may have wrapped onto the copied range while we copied.
  return samples_written() - start <= capacity_;
}

void AudioRingBuffer::Clear() { written_ = 0; }
