// Validates the instruction counter: two loops of known length between marks. A test checks that
// the counts between marks differ by exactly the extra loop instructions (2 per iteration).
#include "m4_cost_marker.h"

__attribute__((noinline)) static void spin(uint32_t n) {
  __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n));  // 2 instructions per iteration
}

int main(void) {
  m4cost_mark(0);
  spin(1000);
  m4cost_mark(1);
  spin(3000);
  m4cost_mark(2);
  m4cost_print_marks();
  return 0;
}
