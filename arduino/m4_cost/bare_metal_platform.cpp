// TFLM's platform hooks on the bare-metal M4 target (both firmware images link this file).
#include <cstdint>
#include <cstdio>

// No clock on this target: TFLM's timer is only read by its own profiler, which is not used.
namespace tflite {
uint32_t ticks_per_second() { return 0; }
uint32_t GetCurrentTimeTicks() { return 0; }
}  // namespace tflite

// MicroPrintf's sink: semihosting stdout.
extern "C" void DebugLog(const char* s) { fputs(s, stdout); }
