// The host's responder: a line per new command on stdout, like the board's Serial line.
#include <cstdio>

#include "command_responder.h"
#include "model_data.h"
#include "recognize_commands.h"

void RespondToCommand(int32_t current_time_ms, const char* found_command, uint8_t score,
                      bool is_new_command) {
  // micro_speech's recognizer re-reports silence on every inference; it is not a command.
  const int silence = SilenceLabelIndex();
  if (is_new_command && !(silence >= 0 && found_command == kCategoryLabels[silence])) {
    printf("  Heard %s (%d) @%dms\n", found_command, score, static_cast<int>(current_time_ms));
  }
}

void RespondToError(const char* message) { fprintf(stderr, "ERROR: %s\n", message); }
