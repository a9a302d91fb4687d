// What the user sees: on the board an RGB LED colour per label and a Serial line per command
// (arduino_command_responder.cpp); on the host a line on stdout (host_test/host_command_responder.cpp).
#ifndef TFLM_KWS_COMMAND_RESPONDER_H_
#define TFLM_KWS_COMMAND_RESPONDER_H_

#include <cstdint>

// Called after every inference; `is_new_command` marks a fresh detection of `found_command`.
void RespondToCommand(int32_t current_time_ms, const char* found_command, uint8_t score,
                      bool is_new_command);

// Called on every loop() after setup failed: shows the error pattern and repeats `message` now and
// then, so a Serial monitor opened late still sees it. Never blocks.
void RespondToError(const char* message);

#endif  // TFLM_KWS_COMMAND_RESPONDER_H_
