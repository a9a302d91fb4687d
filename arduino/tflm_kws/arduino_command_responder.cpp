// Nano 33 BLE Sense output: RGB LED colour per label (lit for 3 s after a command), the orange LED
// toggling on every inference, and a Serial line per command. The RGB LEDs are on when LOW.
#if defined(ARDUINO) && !defined(ARDUINO_ARDUINO_NANO33BLE)
#define ARDUINO_EXCLUDE_CODE
#endif

#ifndef ARDUINO_EXCLUDE_CODE

#include "Arduino.h"
#include "command_responder.h"
#include "kws_log.h"
#include "model_data.h"
#include "recognize_commands.h"

namespace {
constexpr int32_t kLedOnMs = 3000;
constexpr uint32_t kErrorBlinkMs = 250;
constexpr uint32_t kErrorRepeatMs = 5000;

bool g_leds_ready = false;

void InitLeds() {
  if (g_leds_ready) return;
  pinMode(LED_BUILTIN, OUTPUT);
  pinMode(LEDR, OUTPUT);
  pinMode(LEDG, OUTPUT);
  pinMode(LEDB, OUTPUT);
  g_leds_ready = true;
}

// Bit 0 red, bit 1 green, bit 2 blue.
void SetRgb(int colour) {
  digitalWrite(LEDR, (colour & 1) ? LOW : HIGH);
  digitalWrite(LEDG, (colour & 2) ? LOW : HIGH);
  digitalWrite(LEDB, (colour & 4) ? LOW : HIGH);
}

// Silence: off. Other labels cycle green, blue, red, cyan, magenta, yellow, white; "_unknown_" is
// label 1 in the standard task and gets blue.
int LabelColour(const char* label) {
  static const int kPalette[] = {2, 4, 1, 6, 5, 3, 7};
  const int silence = SilenceLabelIndex();
  int index = 0;
  for (int i = 0; i < kCategoryCount; ++i) {
    if (kCategoryLabels[i] == label) {
      if (i == silence) return 0;
      return kPalette[index % 7];
    }
    if (i != silence) ++index;
  }
  return 0;
}
}  // namespace

void RespondToCommand(int32_t current_time_ms, const char* found_command, uint8_t score,
                      bool is_new_command) {
  InitLeds();
  static int32_t last_command_time_ms = -1;
  static bool toggle = false;
  // micro_speech's recognizer re-reports silence on every inference; it is not a command.
  const int silence = SilenceLabelIndex();
  if (is_new_command && !(silence >= 0 && found_command == kCategoryLabels[silence])) {
    KwsLog("Heard %s (%d) @%dms", found_command, score, static_cast<int>(current_time_ms));
    SetRgb(LabelColour(found_command));
    last_command_time_ms = current_time_ms;
  }
  if (last_command_time_ms >= 0 && current_time_ms - last_command_time_ms > kLedOnMs) {
    SetRgb(0);
    last_command_time_ms = -1;
  }
  toggle = !toggle;
  digitalWrite(LED_BUILTIN, toggle ? HIGH : LOW);
}

void RespondToError(const char* message) {
  InitLeds();
  static uint32_t last_report_ms = 0;
  static bool reported = false;
  const uint32_t now = millis();
  if (!reported || now - last_report_ms >= kErrorRepeatMs) {
    KwsLog("ERROR: %s", message);
    last_report_ms = now;
    reported = true;
  }
  // Red blinking at 2 Hz: distinct from any command colour, which stays lit.
  SetRgb(((now / kErrorBlinkMs) & 1) ? 1 : 0);
}

#endif  // ARDUINO_EXCLUDE_CODE
