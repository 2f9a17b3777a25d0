/* The QEMU mps2-an386 board: what main.c and the start-up code use. */
#ifndef BOARD_H
#define BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tgw_link.h"

void board_init(void);
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
