// libFuzzer target: the recognizer on arbitrary score sequences and times, including times that
// go backwards or jump by years (no crash, no undefined behaviour; a verdict names a label).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "model_data.h"
#include "recognize_commands.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  RecognizeCommands recognizer;
  const size_t record = 4 + kCategoryCount;
  for (size_t pos = 0; pos + record <= size; pos += record) {
    int32_t time_ms;
    memcpy(&time_ms, data + pos, 4);
    const char* found = nullptr;
    uint8_t score = 0;
    bool is_new = false;
    if (recognizer.ProcessLatestResults(data + pos + 4, time_ms, &found, &score, &is_new)) {
      if (found == nullptr) abort();
      bool known = false;
      for (int i = 0; i < kCategoryCount; ++i) known = known || strcmp(found, kCategoryLabels[i]) == 0;
      if (!known) abort();
    }
  }
  return 0;
}
