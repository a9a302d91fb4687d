// The measurement marker of the emulated Cortex-M4 cost runner (see README.md).
//
// The QEMU plugin (insn_count_plugin.c) records the running instruction count every time
// m4cost_mark() starts; the firmware records which tag each call had and prints the tags at the
// end (printing between two marks would be counted). Instructions between two marks = the
// difference of their counts: the marker's own instructions are the same on every call.
#ifndef TFLM_KWS_M4_COST_MARKER_H_
#define TFLM_KWS_M4_COST_MARKER_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void m4cost_mark(uint32_t tag);
// Prints "marks N" then one "mark <i> <tag>" line per call so far, on stdout (semihosting).
void m4cost_print_marks(void);

#ifdef __cplusplus
}
#endif

#endif  // TFLM_KWS_M4_COST_MARKER_H_
