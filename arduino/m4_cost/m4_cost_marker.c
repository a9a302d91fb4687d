#include "m4_cost_marker.h"

#include <stdio.h>

#define M4COST_MAX_MARKS 4096u  // a power of two: the index wraps without a branch

static uint32_t g_tags[M4COST_MAX_MARKS];
static volatile uint32_t g_marks;

// noinline + the same straight-line body on every call: its instruction count never varies.
__attribute__((noinline, used)) void m4cost_mark(uint32_t tag) {
  uint32_t i = g_marks;
  g_tags[i & (M4COST_MAX_MARKS - 1u)] = tag;
  g_marks = i + 1u;
}

void m4cost_print_marks(void) {
  uint32_t n = g_marks;
  printf("marks %lu\n", (unsigned long)n);
  for (uint32_t i = 0; i < n && i < M4COST_MAX_MARKS; ++i) {
    printf("mark %lu %lu\n", (unsigned long)i, (unsigned long)g_tags[i]);
  }
}
