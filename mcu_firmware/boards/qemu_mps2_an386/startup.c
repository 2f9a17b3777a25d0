/* Cortex-M4 start-up for the QEMU mps2-an386 image: vector table, .data and
 * .bss, the FPU. */
#include <stdint.h>
#include <string.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void reset_handler(void);
void reset_handler(void) {
    memcpy(&_sdata, &_sidata, (size_t)((uint8_t *)&_edata - (uint8_t *)&_sdata));
    memset(&_sbss, 0, (size_t)((uint8_t *)&_ebss - (uint8_t *)&_sbss));
    CPACR |= 0xFu << 20; /* CP10 and CP11: the FPU, before any float instruction */
    __asm volatile("dsb\n\tisb" ::: "memory");
    (void)main();
    for (;;) {
    }
}

static void fault_handler(void) {
    for (;;) { /* the watchdog resets a stuck board */
    }
}

typedef void (*vector_t)(void);

/* 16 system exceptions, then the mps2-an386 interrupts: UART0 RX is IRQ 0 */
__attribute__((section(".vectors"), used)) static const vector_t vectors[16 + 32] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = reset_handler,
    [2] = board_nmi_handler, /* the watchdog's first expiry */
    [3] = fault_handler,
    [4] = fault_handler,
    [5] = fault_handler,
    [6] = fault_handler,
    [11] = fault_handler,
    [14] = fault_handler,
    [15] = board_systick_handler,
    [16 + 0] = board_uart0_rx_handler,
};
