// KwsLog for the host builds without TFLM (kws_features, recognize_commands_driver): stderr.
#include <cstdarg>
#include <cstdio>

#include "kws_log.h"

void KwsLog(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
}
