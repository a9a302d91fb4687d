#include "kws_log.h"

#include <cstdarg>
#include <cstdio>

#include "tensorflow/lite/micro/micro_log.h"

// Formats locally and hands the finished line to MicroPrintf: TFLM's va_list entry point changed
// between the Arduino library (Log) and current TFLM (VMicroPrintf), MicroPrintf did not.
void KwsLog(const char* format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof(line), format, args);
  va_end(args);
  MicroPrintf("%s", line);
}
