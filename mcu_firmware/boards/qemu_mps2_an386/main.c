/* The reference node on QEMU mps2-an386: the portable core, the serial link on
 * UART0, the shipped model's data set as its sensor and the replay backend. */
#include "basicmotions_model.h"
#include "basicmotions_node.h"
#include "board.h"
#include "tgw_dataset.h"
#include "tgw_replay.h"

#ifndef FIRMWARE_VERSION
#define FIRMWARE_VERSION "tinyml-node 0.1.0 qemu-mps2-an386"
#endif

static tgw_node_t node;
static tgw_serial_link_t link;
static tgw_replay_t replay = {tgw_dataset_windows, tgw_dataset_outputs, TGW_DATASET_WINDOWS,
                              TGW_DATASET_WINDOW_LEN, TGW_DATASET_OUTPUTS, 0, 0};

int main(void) {
    static uint8_t rx[64];
    tgw_hal_t hal;
    tgw_model_t model;
    tgw_node_config_t cfg = {0};
    board_init(true);
    board_hal(&hal, &link);
    basicmotions_node_model(&model, &replay, tgw_replay_invoke);
    cfg.node_id = board_node_id();
    cfg.firmware_version = FIRMWARE_VERSION;
    cfg.hop_samples = BASICMOTIONS_WINDOW_SAMPLES; /* windows of the data set, one after another */
    cfg.attach_window = true;
    cfg.send_scores = true;
    cfg.retx_timeout_ms = 2000;
    cfg.max_sample_rate_hz = 100000;
    cfg.default_sample_rate_hz = 10; /* BasicMotions was recorded at 10 Hz */
    cfg.default_heartbeat_period_s = 5;
    cfg.decision.threshold = 32768; /* 0.5 */
    cfg.decision.debounce = 1;
    cfg.decision.cooldown_ms = 0;
    cfg.decision.label_mask = (1u << BASICMOTIONS_LABEL_COUNT) - 1u;
    if (!tgw_node_start(&node, &hal, &model, &cfg)) {
        for (;;) { /* cannot run without a boot id of its own: the watchdog retries */
        }
    }
    for (;;) {
        size_t n = board_uart_read(rx, sizeof rx);
        if (n > 0u) {
            tgw_serial_link_feed(&link, &node, rx, n);
        }
        tgw_node_poll(&node);
        tgw_node_sleep(&node);
    }
}
