/* The QEMU mps2-an386 board: what main.c and the start-up code use. */
#ifndef BOARD_H
#define BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tgw_link.h"

/* Clock, UART0 and, when asked, the watchdog (10 s to its interrupt, 10 s more to reset). */
void board_init(bool watchdog);
extern volatile uint32_t board_ticks_ms;
/* Polled transmit on UART0 (a tgw_write_fn). */
bool board_uart_write(void *state, const uint8_t *data, size_t len);
/* The node's HAL on this board (sensor: the shipped data set, played back). */
void board_hal(tgw_hal_t *hal, tgw_serial_link_t *link);
/* Bytes the UART received since the last call. */
size_t board_uart_read(uint8_t *buf, size_t cap);
/* A unique-enough id: the build's NODE_ID. */
uint64_t board_node_id(void);

void board_systick_handler(void);
void board_uart0_rx_handler(void);
void board_nmi_handler(void);

#endif
