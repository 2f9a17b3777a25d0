/*
 * Instructions per EVENT on the protocol path, and per window on the core's
 * path, counted on the emulated Cortex-M4.
 *
 * Run under `qemu-system-arm -icount shift=0`: QEMU then advances its virtual
 * clock by exactly 1 ns per instruction, and SysTick (25 MHz, from that clock)
 * counts one tick per 40 instructions. QEMU models no pipeline, caches or wait
 * states, so these are instruction counts, not cycles: on a real Cortex-M4 the
 * cycles are about 1 to 1.5 times as many, more with flash wait states.
 * Prints one line per measurement on UART0 and then "done".
 */
#include <stdint.h>
#include <string.h>

#include "basicmotions_model.h"
#include "board.h"
#include "tgw_dataset.h"
#include "tgw_replay.h"

#define ROUNDS 200u
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define INSNS_PER_TICK 40u /* 1 GHz of instructions over a 25 MHz SysTick */

static uint64_t ticks(void) {
    uint32_t ms, cvr;
    do {
        ms = board_ticks_ms;
        cvr = SYST_CVR;
    } while (ms != board_ticks_ms);
    return (uint64_t)ms * (SYST_RVR + 1u) + (SYST_RVR - cvr);
}

static uint32_t sink_total;

static bool null_write(void *state, const uint8_t *data, size_t len) {
    (void)state;
    sink_total += (uint32_t)len + data[0];
    return true;
}

static bool uart_text(const char *s) {
    return board_uart_write(NULL, (const uint8_t *)s, strlen(s));
}

static void print_result(const char *name, uint64_t total_ticks, uint32_t rounds) {
    char line[96], digits[24];
    uint64_t per = total_ticks * INSNS_PER_TICK / rounds;
    size_t n = 0, d = 0;
    do {
        digits[d++] = (char)('0' + (int)(per % 10u));
        per /= 10u;
    } while (per > 0u && d < sizeof digits);
    memcpy(line, name, strlen(name));
    n = strlen(name);
    line[n++] = ' ';
    while (d > 0u) {
        line[n++] = digits[--d];
    }
    line[n++] = '\n';
    line[n] = '\0';
    (void)uart_text(line);
}

static const uint8_t KEY[32] = {0x42};
static tgw_ring_slot_t slots[16];
static uint8_t ring_mem[16 * TGW_NODE_SLOT_SIZE];
static uint8_t msg_buf[TGW_NODE_SLOT_SIZE];

/* encode, keep in the ring, frame onto the link, and free on the ACK */
static uint64_t protocol_path(bool window, const uint8_t *key) {
    tgw_ring_t ring;
    tgw_message_t m;
    uint64_t t0;
    uint32_t i;
    tgw_ring_init(&ring, slots, ring_mem, 16, TGW_NODE_SLOT_SIZE);
    memset(&m, 0, sizeof m);
    m.header.version = 1;
    m.header.type = TGW_MSG_EVENT;
    m.header.node_id = 0x5eed0000a3860001ull;
    m.header.boot_id = 1;
    m.body.event.model_id = BASICMOTIONS_MODEL_ID;
    m.body.event.n_scores = 4;
    if (window) {
        m.body.event.window.rank = 2;
        m.body.event.window.dims[0] = BASICMOTIONS_WINDOW_SAMPLES;
        m.body.event.window.dims[1] = BASICMOTIONS_WINDOW_AXES;
        m.body.event.window.scale = BASICMOTIONS_INPUT_SCALE;
        m.body.event.window.zero_point = BASICMOTIONS_INPUT_ZERO_POINT;
        m.body.event.window.data = tgw_dataset_windows;
        m.body.event.window.len = TGW_DATASET_WINDOW_LEN;
    }
    t0 = ticks();
    for (i = 1; i <= ROUNDS; i++) {
        size_t len;
        const char *err;
        m.header.seq = i;
        m.header.uptime_ms = i * 100u;
        m.body.event.label = (uint8_t)(i % 4u);
        m.body.event.score = (uint16_t)(60000u + i);
        if (!tgw_encode(&m, key, key != NULL ? sizeof KEY : 0u, msg_buf, sizeof msg_buf, &len,
                        &err) ||
            !tgw_ring_push(&ring, i, msg_buf, (uint16_t)len, i * 100u) ||
            !tgw_frame_write(msg_buf, len, null_write, NULL)) {
            return 0;
        }
        tgw_ring_ack(&ring, i);
    }
    return ticks() - t0;
}

/* 100 samples into the sampler, the window, and the decision: all but inference */
static uint64_t core_path(void) {
    static tgw_sampler_t s;
    static int8_t window[TGW_DATASET_WINDOW_LEN];
    tgw_decision_config_t cfg = {32768, 1, 0, 0xF};
    tgw_decision_t d;
    float axes[BASICMOTIONS_WINDOW_AXES];
    uint64_t t0;
    uint32_t i, j, k;
    (void)tgw_sampler_init(&s, BASICMOTIONS_WINDOW_SAMPLES, BASICMOTIONS_WINDOW_AXES,
                           BASICMOTIONS_INPUT_SCALE, BASICMOTIONS_INPUT_ZERO_POINT);
    tgw_decision_reset(&d);
    t0 = ticks();
    for (i = 0; i < ROUNDS; i++) {
        for (j = 0; j < BASICMOTIONS_WINDOW_SAMPLES; j++) {
            const int8_t *q = tgw_dataset_windows + j * BASICMOTIONS_WINDOW_AXES;
            for (k = 0; k < BASICMOTIONS_WINDOW_AXES; k++) {
                axes[k] = BASICMOTIONS_INPUT_SCALE * (float)(q[k] - BASICMOTIONS_INPUT_ZERO_POINT);
            }
            tgw_sampler_push(&s, axes);
        }
        if (!tgw_sampler_window(&s, BASICMOTIONS_WINDOW_SAMPLES, window)) {
            return 0;
        }
        sink_total += tgw_decide(&d, &cfg, (uint8_t)(i % 4u), 65535, i) ? 1u : 0u;
    }
    return ticks() - t0;
}

static uint64_t replay_lookup(void) {
    tgw_replay_t r = {tgw_dataset_windows, tgw_dataset_outputs, TGW_DATASET_WINDOWS,
                      TGW_DATASET_WINDOW_LEN, TGW_DATASET_OUTPUTS, 0, 0};
    uint16_t scores[TGW_DATASET_OUTPUTS];
    uint64_t t0 = ticks();
    uint32_t i;
    for (i = 0; i < ROUNDS; i++) {
        const int8_t *w = tgw_dataset_windows + (i % TGW_DATASET_WINDOWS) * TGW_DATASET_WINDOW_LEN;
        sink_total += tgw_replay_invoke(&r, w, TGW_DATASET_WINDOW_LEN, scores) ? scores[0] : 0u;
    }
    return ticks() - t0;
}

/* a loop of exactly 2 instructions a round: checks the counting itself */
static uint64_t calibration(uint32_t rounds) {
    uint64_t t0 = ticks();
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(rounds) : : "cc");
    return ticks() - t0;
}

int main(void) {
    board_init(false); /* it never kicks a watchdog */
    (void)uart_text("bench: instructions per operation (qemu -icount shift=0)\n");
    print_result("calibration_loop_of_2", calibration(1000000u), 1000000u);
    print_result("event_with_window_600", protocol_path(true, NULL), ROUNDS);
    print_result("event_with_window_600_hmac", protocol_path(true, KEY), ROUNDS);
    print_result("event_no_window", protocol_path(false, NULL), ROUNDS);
    print_result("event_no_window_hmac", protocol_path(false, KEY), ROUNDS);
    print_result("core_window_without_inference", core_path(), ROUNDS);
    print_result("replay_lookup", replay_lookup(), ROUNDS);
    (void)uart_text(sink_total != 0u ? "done\n" : "done (nothing written?)\n");
    for (;;) {
        __asm volatile("wfi");
    }
}
