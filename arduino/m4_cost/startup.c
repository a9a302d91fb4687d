// Bare-metal start-up for QEMU's mps2-an386 (Cortex-M4 with FPU): vector table, FPU on, .bss
// cleared, semihosting (newlib's librdimon) for stdout and exit. QEMU loads the ELF directly, so
// .data needs no copy. Faults print their number and exit(3): a crash is an error, not a hang.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern uint32_t __bss_start__, __bss_end__, __stack_top;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

void _init(void) {}
void _fini(void) {}
// Static C++ objects register their destructors with __cxa_atexit against this handle (-nostartfiles
// leaves out crtbegin.o, which would define it).
void *__dso_handle = 0;

static void fault(uint32_t number) {
  printf("m4_cost: fault, exception %lu\n", (unsigned long)number);
  exit(3);
}
void NMI_Handler(void) { fault(2); }
void HardFault_Handler(void) { fault(3); }
void MemManage_Handler(void) { fault(4); }
void BusFault_Handler(void) { fault(5); }
void UsageFault_Handler(void) { fault(6); }
void Default_Handler(void) { fault(0); }

void Reset_Handler(void) {
  // CP10 and CP11 full access: the FPU (the board build uses -mfpu=fpv4-sp-d16).
  volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
  *cpacr |= 0xFu << 20;
  __asm volatile("dsb\n isb");
  for (uint32_t *p = &__bss_start__; p < &__bss_end__; ++p) *p = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}

__attribute__((section(".vectors"), used)) static void (*const g_vectors[16])(void) = {
    (void (*)(void))(&__stack_top), Reset_Handler, NMI_Handler, HardFault_Handler,
    MemManage_Handler, BusFault_Handler, UsageFault_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler};
