// Unit test of the sketch's AudioRingBuffer (no TFLM): many wraps, reads at every offset, and the
// failures the feature provider relies on (not yet written, overwritten, bad arguments).
// Prints "N passed, M failed" and exits non-zero on any failure.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "audio_ring_buffer.h"

namespace {

int g_passed = 0;
int g_failed = 0;

void Check(bool ok, const char* what, long long a, long long b) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    if (g_failed <= 20) fprintf(stderr, "FAILED: %s (%lld, %lld)\n", what, a, b);
  }
}

// Sample i of the test stream: distinct across any window shorter than 65536.
int16_t SampleAt(int64_t i) { return static_cast<int16_t>((i * 7919) & 0xffff); }

}  // namespace

int main() {
  constexpr int kCapacity = 1000;
  std::vector<int16_t> storage(kCapacity);
  AudioRingBuffer ring(storage.data(), kCapacity);
  Check(ring.samples_written() == 0, "empty at start", ring.samples_written(), 0);
  int16_t out[kCapacity];
  Check(!ring.Read(0, 1, out), "read before anything is written fails", 0, 1);

  // Append in chunk sizes 1..capacity (a fixed pseudo-random pattern), wrapping ~200 times, and
  // after every chunk read back the newest samples at several offsets and lengths.
  int64_t written = 0;
  uint32_t state = 12345;
  std::vector<int16_t> chunk(kCapacity);
  while (written < 200LL * kCapacity) {
    state = state * 1103515245u + 12345u;
    const int count = 1 + static_cast<int>((state >> 8) % kCapacity);
    for (int i = 0; i < count; ++i) chunk[i] = SampleAt(written + i);
    ring.Write(chunk.data(), count);
    written += count;
    Check(ring.samples_written() == written, "samples_written counts every sample",
          ring.samples_written(), written);
    const int lengths[] = {1, 7, 320, 480, kCapacity};
    for (int length : lengths) {
      const int64_t start = written - length;
      if (start < 0) continue;
      const bool ok = ring.Read(start, length, out);
      Check(ok, "newest samples are readable", start, length);
      bool equal = ok;
      for (int i = 0; ok && i < length; ++i) equal = equal && out[i] == SampleAt(start + i);
      Check(equal, "read returns the samples written", start, length);
    }
    Check(!ring.Read(written - 10, 11, out), "a range past the newest sample fails", written, 11);
    if (written > kCapacity) {
      Check(!ring.Read(written - kCapacity - 1, 1, out), "an overwritten sample fails", written, 1);
    }
  }
  Check(!ring.Read(-1, 1, out), "negative start fails", -1, 1);
  Check(!ring.Read(0, -1, out), "negative count fails", 0, -1);
  Check(!ring.Read(written - kCapacity, kCapacity + 1, out), "count > capacity fails", written,
        kCapacity + 1);
  ring.Clear();
  Check(ring.samples_written() == 0 && !ring.Read(0, 1, out), "Clear() forgets everything",
        ring.samples_written(), 0);
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
