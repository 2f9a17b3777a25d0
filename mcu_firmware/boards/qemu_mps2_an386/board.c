/* HAL of the QEMU mps2-an386 board: CMSDK UART0, SysTick, CMSDK watchdog,
 * retained RAM for the boot counter, and the data set as the sensor. */
#include "board.h"

#include <string.h>

#include "basicmotions_model.h"
#include "tgw_dataset.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define SYSCLK_HZ 25000000u /* mps2-an386 */

#define UART0 0x40004000u
#define UART_DATA (UART0 + 0x00u)
#define UART_STATE (UART0 + 0x04u)
#define UART_CTRL (UART0 + 0x08u)
#define UART_INTCLEAR (UART0 + 0x0Cu)
#define UART_BAUDDIV (UART0 + 0x10u)
#define UART_STATE_TXFULL 0x1u
#define UART_STATE_RXFULL 0x2u
#define UART_CTRL_TX 0x1u
#define UART_CTRL_RX 0x2u
#define UART_CTRL_RXINT 0x8u
#define UART_INT_RX 0x2u

#define WDOG 0x40008000u
#define WDOG_LOAD (WDOG + 0x000u)
#define WDOG_CTRL (WDOG + 0x008u)
#define WDOG_INTCLR (WDOG + 0x00Cu)
#define WDOG_LOCK (WDOG + 0xC00u)
#define WDOG_UNLOCK 0x1ACCE551u
#define WDOG_TIMEOUT_S 10u /* interrupt after 10 s without a kick, reset 10 s later */

#define SYST_CSR 0xE000E010u
#define SYST_RVR 0xE000E014u
#define SYST_CVR 0xE000E018u
#define NVIC_ISER0 0xE000E100u
#define SCB_AIRCR 0xE000ED0Cu

/* ---- clock: SysTick at 1 kHz ---------------------------------------------- */
volatile uint32_t board_ticks_ms;

void board_systick_handler(void) {
    board_ticks_ms++;
}

static uint32_t hal_millis(void *ctx) {
    (void)ctx;
    return board_ticks_ms;
}

static uint32_t hal_micros(void *ctx) {
    uint32_t ms, cvr;
    (void)ctx;
    do { /* a tick between the two reads would pair a new count with an old ms */
        ms = board_ticks_ms;
        cvr = REG(SYST_CVR);
    } while (ms != board_ticks_ms);
    return ms * 1000u + (REG(SYST_RVR) - cvr) / (SYSCLK_HZ / 1000000u);
}

/* ---- UART0: polled transmit, interrupt-driven receive into a ring ---------- */
static volatile uint8_t rx_ring[256];
static volatile uint8_t rx_head, rx_tail; /* ISR writes head, the loop reads tail */

void board_uart0_rx_handler(void) {
    /* Cleared before the drain, not after: a byte that lands between the last RXFULL
     * check and a late clear would lose its interrupt, stay unread in the holding
     * register and stop reception for good (the node deaf to ACKs and commands). */
    REG(UART_INTCLEAR) = UART_INT_RX;
    while ((REG(UART_STATE) & UART_STATE_RXFULL) != 0u) {
        uint8_t b = (uint8_t)REG(UART_DATA);
        if ((uint8_t)(rx_head + 1u) != rx_tail) { /* full: the byte is lost, the CRC says so */
            rx_ring[rx_head] = b;
            rx_head++;
        }
    }
}

size_t board_uart_read(uint8_t *buf, size_t cap) {
    size_t n = 0;
    while (n < cap && rx_tail != rx_head) {
        buf[n++] = rx_ring[rx_tail];
        rx_tail++;
    }
    return n;
}

bool board_uart_write(void *state, const uint8_t *data, size_t len) {
    size_t i;
    (void)state;
    for (i = 0; i < len; i++) {
        while ((REG(UART_STATE) & UART_STATE_TXFULL) != 0u) {
        }
        REG(UART_DATA) = data[i];
    }
    return true;
}

static tgw_serial_link_t *serial;

static bool hal_send(void *ctx, const uint8_t *msg, size_t len) {
    (void)ctx;
    return tgw_serial_link_send(serial, msg, len);
}

/* ---- sensor: the data set's windows, sample by sample ---------------------- */
static uint32_t sample_index;

static bool hal_read_sample(void *ctx, float *axes, uint8_t n_axes) {
    uint32_t window = (sample_index / BASICMOTIONS_WINDOW_SAMPLES) % TGW_DATASET_WINDOWS;
    uint32_t row = sample_index % BASICMOTIONS_WINDOW_SAMPLES;
    const int8_t *q = tgw_dataset_windows + window * TGW_DATASET_WINDOW_LEN +
                      row * BASICMOTIONS_WINDOW_AXES;
    uint8_t i;
    (void)ctx;
    if (n_axes != BASICMOTIONS_WINDOW_AXES) {
        return false;
    }
    /* the physical values the data set was quantised from */
    for (i = 0; i < n_axes; i++) {
        axes[i] = BASICMOTIONS_INPUT_SCALE * (float)(q[i] - BASICMOTIONS_INPUT_ZERO_POINT);
    }
    sample_index++;
    return true;
}

/* ---- storage: retained RAM, as an RTC backup domain would keep it ----------- */
extern tgw_persist_t _retained; /* the linker script places it */

static bool hal_load(void *ctx, tgw_persist_t *out) {
    (void)ctx;
    *out = _retained; /* the core checks magic and CRC */
    return true;
}

static bool hal_save(void *ctx, const tgw_persist_t *in) {
    (void)ctx;
    _retained = *in;
    return true;
}

/* ---- watchdog, sleep, reset -------------------------------------------------- */
void board_nmi_handler(void) {
    for (;;) { /* the loop stopped kicking: wait for the watchdog's reset */
    }
}

static void hal_watchdog_kick(void *ctx) {
    (void)ctx;
    REG(WDOG_LOCK) = WDOG_UNLOCK;
    REG(WDOG_INTCLR) = 1u; /* reloads the counter */
    REG(WDOG_LOCK) = 0u;
}

static void hal_sleep_until(void *ctx, uint32_t deadline_ms) {
    uint32_t latest = board_ticks_ms + 1000u; /* back in the loop well before the watchdog bites */
    (void)ctx;
    if ((int32_t)(deadline_ms - latest) > 0) {
        deadline_ms = latest;
    }
    /* SysTick wakes the core every millisecond, UART0 on every byte */
    while (rx_tail == rx_head && (int32_t)(deadline_ms - board_ticks_ms) > 0) {
        __asm volatile("wfi");
    }
}

static void hal_reboot(void *ctx) {
    (void)ctx;
    __asm volatile("dsb" ::: "memory");
    REG(SCB_AIRCR) = 0x05FA0004u; /* VECTKEY | SYSRESETREQ */
    for (;;) {
    }
}

void board_init(bool watchdog) {
    REG(SYST_RVR) = SYSCLK_HZ / 1000u - 1u;
    REG(SYST_CVR) = 0u;
    REG(SYST_CSR) = 0x7u; /* processor clock, interrupt, enable */
    REG(UART_BAUDDIV) = SYSCLK_HZ / 115200u;
    REG(UART_CTRL) = UART_CTRL_TX | UART_CTRL_RX | UART_CTRL_RXINT;
    REG(NVIC_ISER0) = 1u << 0; /* UART0 RX */
    if (!watchdog) {
        return;
    }
    REG(WDOG_LOCK) = WDOG_UNLOCK;
    REG(WDOG_LOAD) = SYSCLK_HZ * WDOG_TIMEOUT_S;
    REG(WDOG_CTRL) = 0x3u; /* interrupt (NMI) on the first expiry, reset on the second */
    REG(WDOG_LOCK) = 0u;
}

void board_hal(tgw_hal_t *hal, tgw_serial_link_t *link) {
    memset(hal, 0, sizeof *hal);
    serial = link;
    tgw_serial_link_init(link, board_uart_write, NULL);
    hal->millis = hal_millis;
    hal->micros = hal_micros;
    hal->read_sample = hal_read_sample;
    hal->send = hal_send;
    hal->load = hal_load;
    hal->save = hal_save;
    hal->watchdog_kick = hal_watchdog_kick;
    hal->sleep_until = hal_sleep_until;
    hal->reboot = hal_reboot;
    /* no battery and no temperature sensor on this board: reported as not measured */
}

uint64_t board_node_id(void) {
    return (uint64_t)NODE_ID;
}
