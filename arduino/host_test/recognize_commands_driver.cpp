// Feeds scripted score sequences to the sketch's RecognizeCommands (no model, no TFLM).
// stdin: one line per inference, "<time_ms> <score_0> ... <score_{kCategoryCount-1}>" (0..255).
// stdout: first "labels <label_0> ...", then per input line
// "<time_ms> <found_command> <score> <is_new_command 0|1>"; a rejected line prints "error".
#include <cstdio>
#include <cstdint>

#include "model_data.h"
#include "recognize_commands.h"

int main() {
  printf("labels");
  for (int i = 0; i < kCategoryCount; ++i) printf(" %s", kCategoryLabels[i]);
  printf("\n");
  RecognizeCommands recognizer;
  long time_ms = 0;
  while (scanf("%ld", &time_ms) == 1) {
    uint8_t scores[kCategoryCount];
    for (int i = 0; i < kCategoryCount; ++i) {
      int value = 0;
      if (scanf("%d", &value) != 1 || value < 0 || value > 255) {
        fprintf(stderr, "recognize_commands_driver: bad score on the line for time %ld\n", time_ms);
        return 2;
      }
      scores[i] = static_cast<uint8_t>(value);
    }
    const char* found = nullptr;
    uint8_t score = 0;
    bool is_new = false;
    if (recognizer.ProcessLatestResults(scores, static_cast<int32_t>(time_ms), &found, &score,
                                        &is_new)) {
      printf("%ld %s %d %d\n", time_ms, found, score, is_new ? 1 : 0);
    } else {
      printf("%ld error\n", time_ms);
    }
  }
  return 0;
}
