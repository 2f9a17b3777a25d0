/* Host unit tests of the node core, on a host HAL whose clock, sensor, link and
 * storage the tests drive. Prints one line per test and "N passed, N failed". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tgw_link.h"
#include "tgw_node.h"
#include "tgw_replay.h"

static int failures;
static int current_failed;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            current_failed = 1;                                                           \
        }                                                                                 \
    } while (0)

static int passed;
#define RUN(fn)                                                                           \
    do {                                                                                  \
        current_failed = 0;                                                               \
        fn();                                                                             \
        if (current_failed) {                                                             \
            failures++;                                                                   \
            printf("FAIL %s\n", #fn);                                                     \
        } else {                                                                          \
            passed++;                                                                     \
            printf("ok   %s\n", #fn);                                                     \
        }                                                                                 \
    } while (0)

/* ---- the host HAL ---------------------------------------------------------- */

#define MAX_SENT 64
#define AXES 2
#define SAMPLES 4

typedef struct {
    uint8_t bytes[TGW_NODE_SLOT_SIZE];
    size_t len;
} sent_t;

typedef struct {
    uint32_t now_ms;
    float next_sample[AXES];
    bool sensor_fault;
    bool link_down;
    bool rate_refused;
    uint32_t rate_set;
    sent_t sent[MAX_SENT];
    size_t n_sent;
    size_t sends_before_save; /* sends that happened before the first save */
    bool saved;
    tgw_persist_t storage;
    bool storage_present;
    bool save_fails;
    int reboots;
    int kicks;
} host_t;

static host_t host;

static uint32_t h_millis(void *ctx) { return ((host_t *)ctx)->now_ms; }
static uint32_t h_micros(void *ctx) { return ((host_t *)ctx)->now_ms * 1000u; }
static bool h_read(void *ctx, float *axes, uint8_t n) {
    host_t *h = (host_t *)ctx;
    if (h->sensor_fault || n != AXES) {
        return false;
    }
    memcpy(axes, h->next_sample, sizeof(float) * n);
    return true;
}
static bool h_rate(void *ctx, uint32_t hz) {
    host_t *h = (host_t *)ctx;
    if (h->rate_refused) {
        return false;
    }
    h->rate_set = hz;
    return true;
}
static bool h_send(void *ctx, const uint8_t *msg, size_t len) {
    host_t *h = (host_t *)ctx;
    if (h->link_down) {
        return false;
    }
    if (!h->saved) {
        h->sends_before_save++;
    }
    if (h->n_sent < MAX_SENT && len <= sizeof h->sent[0].bytes) {
        memcpy(h->sent[h->n_sent].bytes, msg, len);
        h->sent[h->n_sent].len = len;
        h->n_sent++;
    }
    return true;
}
static bool h_load(void *ctx, tgw_persist_t *out) {
    host_t *h = (host_t *)ctx;
    if (!h->storage_present) {
        return false;
    }
    *out = h->storage;
    return true;
}
static bool h_save(void *ctx, const tgw_persist_t *in) {
    host_t *h = (host_t *)ctx;
    if (h->save_fails) {
        return false;
    }
    h->storage = *in;
    h->storage_present = true;
    h->saved = true;
    return true;
}
static uint16_t h_battery(void *ctx) { (void)ctx; return 3712; }
static int16_t h_temp(void *ctx) { (void)ctx; return 2150; }
static void h_kick(void *ctx) { ((host_t *)ctx)->kicks++; }
static void h_reboot(void *ctx) { ((host_t *)ctx)->reboots++; }

static const tgw_hal_t HAL = {&host, h_millis, h_micros, h_read, h_rate, h_send,
                              h_load, h_save, h_battery, h_temp, h_kick, NULL, h_reboot};

/* ---- a model whose answer the sensor chooses ------------------------------
 * label = window[0] mod 3 (the first axis of the oldest sample), score of the
 * label = 1000 * (window[1] + 128) (the second axis): the tests pick samples to
 * get the decision they want. */
static const uint8_t SHA[32] = {0x44, 0x33, 0x22, 0x11, 5, 6, 7, 8};
static const char *const LABELS[3] = {"idle", "walk", "run"};
static bool fail_inference;
static bool m_invoke(void *ctx, const int8_t *w, size_t len, uint16_t *scores) {
    (void)ctx;
    if (fail_inference || len != SAMPLES * AXES) {
        return false;
    }
    scores[0] = scores[1] = scores[2] = 0;
    scores[(uint8_t)(w[0] + 128) % 3u] = (uint16_t)(250u * (uint32_t)(w[1] + 128));
    return true;
}
static const tgw_model_t MODEL = {NULL, 0x11223344u, SHA, "fake", LABELS, 3,
                                  SAMPLES, AXES, 0.5f, -10, m_invoke};

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static tgw_node_config_t config(void) {
    tgw_node_config_t c;
    memset(&c, 0, sizeof c);
    c.node_id = 0xa1b2c3d4e5f60718ull;
    c.firmware_version = "test-1.0";
    c.hop_samples = SAMPLES;
    c.attach_window = true;
    c.send_scores = true;
    c.retx_timeout_ms = 2000;
    c.max_sample_rate_hz = 1000;
    c.default_sample_rate_hz = 100; /* a sample every 10 ms */
    c.default_heartbeat_period_s = 30;
    c.decision.threshold = 30000;
    c.decision.debounce = 1;
    c.decision.cooldown_ms = 0;
    c.decision.label_mask = 0x6; /* walk and run raise events, idle does not */
    return c;
}

static tgw_node_t node;

static void reset_host(void) {
    memset(&host, 0, sizeof host);
    fail_inference = false;
}

static void clear_sent(void) { host.n_sent = 0; }

static bool start(const tgw_node_config_t *c) {
    host.saved = false;
    host.sends_before_save = 0;
    return tgw_node_start(&node, &HAL, &MODEL, c);
}

static tgw_message_t decoded(size_t i) {
    tgw_message_t m;
    const char *err;
    memset(&m, 0, sizeof m);
    if (i >= host.n_sent || !tgw_decode(host.sent[i].bytes, host.sent[i].len, &m, &err)) {
        m.header.type = 0;
    }
    return m;
}

static size_t count_type(uint8_t type) {
    size_t i, n = 0;
    for (i = 0; i < host.n_sent; i++) {
        n += decoded(i).header.type == type;
    }
    return n;
}

static tgw_message_t last_of(uint8_t type) {
    size_t i = host.n_sent;
    tgw_message_t m;
    memset(&m, 0, sizeof m);
    while (i-- > 0) {
        m = decoded(i);
        if (m.header.type == type) {
            return m;
        }
    }
    memset(&m, 0, sizeof m);
    return m;
}

/* Runs the node for ms milliseconds in 1 ms steps, the sensor at `sample`. */
static void run_ms(uint32_t ms) {
    uint32_t i;
    for (i = 0; i < ms; i++) {
        host.now_ms++;
        tgw_node_poll(&node);
    }
}

/* One window's worth of samples (4 at 100 Hz: 40 ms) with these values:
 * label = (v0 + 128) % 3 after quantising (x / 0.5 - 10). */
static void window_of(float v0, float v1) {
    host.next_sample[0] = v0;
    host.next_sample[1] = v1;
    run_ms(40);
}

/* values that quantise to q0/q1 */
static float value_for(int q) { return (float)(q + 10) * 0.5f; }

/* A window that raises `label` at score 250*250; the sensor then reads windows
 * of label 0, which raise nothing. */
static void event_window(uint8_t label) {
    window_of(value_for((int)label - 128 + 3 * 40), value_for(122));
    host.next_sample[0] = value_for(-128);
}

/* A downlink message as the gateway would send it; the node id is the node's
 * unless node_id says otherwise. */
static size_t encode_downlink(uint8_t type, uint64_t node_id, uint32_t boot, uint32_t seq,
                              const tgw_command_t *cmd, uint32_t ack_seq, const uint8_t *key,
                              uint8_t *buf, size_t cap) {
    tgw_message_t m;
    size_t len;
    const char *err;
    memset(&m, 0, sizeof m);
    m.header.version = 1;
    m.header.type = type;
    m.header.node_id = node_id != 0u ? node_id : node.cfg.node_id;
    m.header.boot_id = boot;
    m.header.seq = seq;
    if (type == TGW_MSG_COMMAND) {
        m.body.command = *cmd;
    } else {
        m.body.ack.boot_id = boot;
        m.body.ack.seq = ack_seq;
    }
    return tgw_encode(&m, key, key ? sizeof KEY : 0, buf, cap, &len, &err) ? len : 0u;
}

static void downlink(uint8_t type, uint32_t boot, uint32_t seq, const tgw_command_t *cmd,
                     uint32_t ack_seq, const uint8_t *key) {
    uint8_t buf[TGW_NODE_RX_MAX];
    size_t len = encode_downlink(type, 0, boot, seq, cmd, ack_seq, key, buf, sizeof buf);
    CHECK(len > 0u);
    tgw_node_receive(&node, buf, len);
}

static void ack(uint32_t upto) {
    downlink(TGW_MSG_ACK, node.persist.boot_id, 1, NULL, upto, NULL);
}

static tgw_command_ack_t command(uint8_t code, const uint8_t *args, uint8_t arg_len) {
    static uint16_t request = 100;
    tgw_command_t c;
    tgw_command_ack_t none;
    tgw_message_t m;
    c.request_id = ++request;
    c.command = code;
    c.arg_len = arg_len;
    c.args = args;
    clear_sent();
    downlink(TGW_MSG_COMMAND, node.persist.boot_id, 1, &c, 0, NULL);
    m = last_of(TGW_MSG_COMMAND_ACK);
    memset(&none, 0xEE, sizeof none);
    if (m.header.type != TGW_MSG_COMMAND_ACK || m.body.command_ack.request_id != request) {
        return none;
    }
    return m.body.command_ack;
}

/* ---- boot id and storage -------------------------------------------------- */

static void test_boot_id_counts_up_and_is_stored_before_anything_is_sent(void) {
    tgw_node_config_t c = config();
    tgw_message_t info;
    reset_host();
    CHECK(start(&c));
    CHECK(node.persist.boot_id == 1 && host.storage.boot_id == 1);
    CHECK(host.sends_before_save == 0);
    CHECK(host.n_sent == 2);
    info = decoded(0);
    CHECK(info.header.type == TGW_MSG_INFO && info.header.boot_id == 1);
    CHECK(info.body.info.n_labels == 3 && info.body.info.labels[2].len == 3);
    CHECK(info.body.info.capabilities == (TGW_CAP_DOWNLINK | TGW_CAP_WINDOW));
    CHECK(info.body.info.sample_rate_hz == 100 && info.body.info.heartbeat_period_s == 30);
    CHECK(memcmp(info.body.info.model_sha256, SHA, 32) == 0);
    CHECK(decoded(1).header.type == TGW_MSG_HEARTBEAT);
    CHECK(start(&c) && node.persist.boot_id == 2);
    CHECK(start(&c) && node.persist.boot_id == 3 && host.storage.boot_id == 3);
}

static void test_erased_or_corrupt_storage_starts_at_boot_1(void) {
    tgw_node_config_t c = config();
    reset_host();
    host.storage_present = true;
    memset(&host.storage, 0xFF, sizeof host.storage); /* erased flash */
    CHECK(start(&c) && node.persist.boot_id == 1);
    host.storage.boot_id = 41; /* a bit flip: the check no longer matches */
    CHECK(start(&c) && node.persist.boot_id == 1);
    CHECK(start(&c) && node.persist.boot_id == 2);
}

static void test_storage_that_cannot_store_the_boot_id_stops_the_start(void) {
    tgw_node_config_t c = config();
    reset_host();
    host.save_fails = true;
    CHECK(!start(&c));
    CHECK(host.n_sent == 0);
    reset_host();
    host.storage.boot_id = UINT32_MAX;
    tgw_persist_seal(&host.storage);
    host.storage_present = true;
    CHECK(!start(&c)); /* it would repeat a boot id */
    CHECK(host.n_sent == 0);
}

static void test_a_configuration_that_does_not_fit_is_refused(void) {
    tgw_node_config_t c = config();
    tgw_model_t big = MODEL;
    reset_host();
    c.node_id = 0;
    CHECK(!start(&c));
    c = config();
    c.key = KEY;
    c.key_len = 8; /* keys are 16..64 bytes */
    CHECK(!start(&c));
    c = config();
    big.window_samples = TGW_NODE_MAX_WINDOW;
    CHECK(!tgw_node_start(&node, &HAL, &big, &c));
    CHECK(host.n_sent == 0);
}

/* ---- decision -------------------------------------------------------------- */

static void test_threshold_debounce_and_cooldown(void) {
    tgw_decision_config_t cfg = {1000, 3, 500, 0xFFFFFFFFu};
    tgw_decision_t d;
    tgw_decision_reset(&d);
    CHECK(!tgw_decide(&d, &cfg, 1, 999, 0)); /* below threshold */
    CHECK(!tgw_decide(&d, &cfg, 1, 1000, 10));
    CHECK(!tgw_decide(&d, &cfg, 1, 1000, 20));
    CHECK(tgw_decide(&d, &cfg, 1, 1000, 30)); /* third in a row */
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 40));
    CHECK(!tgw_decide(&d, &cfg, 2, 5000, 50)); /* another label starts its own streak */
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 60));
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 70));
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 80)); /* a full streak, but cooling down */
    CHECK(tgw_decide(&d, &cfg, 1, 5000, 530)); /* the first window after the cooldown */
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 540));
    CHECK(!tgw_decide(&d, &cfg, 1, 10, 550)); /* a miss breaks the streak */
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 1040));
    CHECK(!tgw_decide(&d, &cfg, 1, 5000, 1050));
    CHECK(tgw_decide(&d, &cfg, 1, 5000, 1060));
}

static void test_cooldown_across_the_uptime_wrap_and_the_label_mask(void) {
    tgw_decision_config_t cfg = {0, 1, 1000, 0x2};
    tgw_decision_t d;
    tgw_decision_reset(&d);
    CHECK(!tgw_decide(&d, &cfg, 0, 65535, 0)); /* label 0 is not in the mask */
    CHECK(!tgw_decide(&d, &cfg, 40, 65535, 0)); /* out of range of any mask */
    CHECK(tgw_decide(&d, &cfg, 1, 0, UINT32_MAX - 100)); /* threshold 0: every score */
    CHECK(!tgw_decide(&d, &cfg, 1, 0, 800));           /* 901 ms later, across the wrap */
    CHECK(tgw_decide(&d, &cfg, 1, 0, 900));            /* 1001 ms later */
    CHECK(tgw_top_label((const uint16_t[]){3, 9, 9, 1}, 4) == 1);
}

/* ---- sampling and windows ---------------------------------------------------- */

static void test_quantise_rounds_like_tflite_and_saturates(void) {
    CHECK(tgw_quantise(0.25f, 2.0f, -15) == -14); /* 0.5 rounds away from zero, then zp */
    CHECK(tgw_quantise(-0.25f, 2.0f, -15) == -16);
    CHECK(tgw_quantise(0.24f, 2.0f, -15) == -15);
    CHECK(tgw_quantise(1000.0f, 1.0f, 0) == 127);
    CHECK(tgw_quantise(-1000.0f, 1.0f, 0) == -128);
    CHECK(tgw_quantise(1e30f, 1.0f, 0) == 127);
    CHECK(tgw_quantise((float)NAN, 1.0f, -7) == -7);
    CHECK(tgw_quantise(140.0f, 1.0f, -15) == 125);
}

static void test_windows_are_oldest_first_and_hop(void) {
    tgw_sampler_t s;
    int8_t out[SAMPLES * AXES];
    float v[AXES];
    int i;
    CHECK(tgw_sampler_init(&s, SAMPLES, AXES, 1.0f, 0));
    CHECK(!tgw_sampler_init(&s, 0, AXES, 1.0f, 0));
    CHECK(!tgw_sampler_init(&s, SAMPLES, AXES, 0.0f, 0));
    CHECK(tgw_sampler_init(&s, SAMPLES, AXES, 1.0f, 0));
    for (i = 1; i <= 6; i++) {
        v[0] = (float)i;
        v[1] = (float)-i;
        tgw_sampler_push(&s, v);
        if (i == 3) {
            CHECK(!tgw_sampler_window(&s, 2, out)); /* not full yet */
        }
        if (i == 4) {
            CHECK(tgw_sampler_window(&s, 2, out) && out[0] == 1 && out[7] == -4);
        }
        if (i == 5) {
            CHECK(!tgw_sampler_window(&s, 2, out)); /* one new sample, hop is 2 */
        }
    }
    CHECK(tgw_sampler_window(&s, 2, out));
    CHECK(out[0] == 3 && out[1] == -3 && out[6] == 6 && out[7] == -6);
}

/* ---- events, the ring and heartbeats ----------------------------------------- */

static void test_an_event_carries_its_window_scores_and_the_next_seq(void) {
    tgw_node_config_t c = config();
    tgw_message_t e;
    reset_host();
    CHECK(start(&c));
    clear_sent();
    event_window(2);
    CHECK(count_type(TGW_MSG_EVENT) == 1);
    e = last_of(TGW_MSG_EVENT);
    CHECK(e.header.seq == 1 && e.header.boot_id == 1 && e.header.node_id == c.node_id);
    CHECK(e.body.event.model_id == 0x11223344u && e.body.event.label == 2);
    CHECK(e.body.event.score == 250u * 250u && e.body.event.n_scores == 3);
    CHECK(e.body.event.window.rank == 2 && e.body.event.window.dims[0] == SAMPLES &&
          e.body.event.window.dims[1] == AXES && e.body.event.window.len == SAMPLES * AXES);
    CHECK(e.body.event.window.zero_point == -10 && e.body.event.window.scale == 0.5f);
    CHECK(e.body.event.window.data[1] == 122);
    CHECK(e.body.event.inference_us == 0); /* the fake model takes no time on the fake clock */
    clear_sent();
    window_of(value_for(-128), value_for(122)); /* label 0: not in the mask */
    window_of(value_for(-127), value_for(-128)); /* label 1, score 0: below threshold */
    CHECK(count_type(TGW_MSG_EVENT) == 0);
    event_window(1);
    CHECK(last_of(TGW_MSG_EVENT).header.seq == 2);
    CHECK(node.stats.inferences == 4);
}

static void test_acks_free_the_ring_and_unacked_events_are_resent_byte_for_byte(void) {
    tgw_node_config_t c = config();
    sent_t second;
    reset_host();
    CHECK(start(&c));
    clear_sent();
    event_window(1);
    event_window(2);
    second = host.sent[1];
    CHECK(node.ring.count == 2);
    ack(1);
    CHECK(node.ring.count == 1);
    clear_sent();
    run_ms(2000);
    CHECK(host.n_sent >= 1 && host.sent[0].len == second.len);
    CHECK(memcmp(host.sent[0].bytes, second.bytes, second.len) == 0);
    CHECK(node.stats.retransmissions == 1);
    ack(2);
    CHECK(node.ring.count == 0);
    clear_sent();
    run_ms(3000);
    CHECK(count_type(TGW_MSG_EVENT) == 0);
    /* a link that drops everything: the events wait in the ring */
    reset_host();
    CHECK(start(&c));
    host.link_down = true;
    event_window(1);
    host.link_down = false;
    clear_sent();
    run_ms(2100);
    CHECK(count_type(TGW_MSG_EVENT) == 1);
}

static void test_link_up_resends_everything_unacknowledged_at_once(void) {
    tgw_node_config_t c = config();
    reset_host();
    CHECK(start(&c));
    event_window(1);
    event_window(2);
    event_window(1);
    clear_sent();
    tgw_node_link_up(&node);
    run_ms(1);
    CHECK(decoded(0).header.type == TGW_MSG_INFO);
    CHECK(count_type(TGW_MSG_EVENT) == 3);
}

static void test_ring_overflow_is_counted_and_the_floor_is_the_oldest_held(void) {
    tgw_node_config_t c = config();
    tgw_message_t hb;
    uint32_t i;
    reset_host();
    c.default_heartbeat_period_s = 5;
    CHECK(start(&c));
    for (i = 0; i < TGW_NODE_RING_SLOTS + 3u; i++) {
        event_window((uint8_t)(1u + i % 2u));
    }
    clear_sent();
    run_ms(5000);
    hb = last_of(TGW_MSG_HEARTBEAT);
    CHECK(hb.header.type == TGW_MSG_HEARTBEAT);
    CHECK(hb.header.seq == TGW_NODE_RING_SLOTS + 3u);
    CHECK(hb.body.heartbeat.events_dropped == 3);
    CHECK(hb.body.heartbeat.retx_floor == 4);
    CHECK(hb.body.heartbeat.battery_mv == 3712 && hb.body.heartbeat.temperature_cdeg == 2150);
    CHECK(hb.body.heartbeat.inferences > TGW_NODE_RING_SLOTS + 3u);
    CHECK(hb.body.heartbeat.inferences <= node.stats.inferences);
    ack(TGW_NODE_RING_SLOTS + 3u);
    clear_sent();
    run_ms(5000);
    /* an empty ring: the floor is the next seq, what the gateway expects of an honest node */
    CHECK(last_of(TGW_MSG_HEARTBEAT).body.heartbeat.retx_floor == TGW_NODE_RING_SLOTS + 4u);
}

static void test_heartbeats_keep_their_period(void) {
    tgw_node_config_t c = config();
    reset_host();
    c.default_heartbeat_period_s = 2;
    c.default_sample_rate_hz = 1;
    CHECK(start(&c));
    clear_sent();
    run_ms(9999);
    CHECK(count_type(TGW_MSG_HEARTBEAT) == 4);
    CHECK(tgw_node_next_deadline(&node) != 0);
    run_ms(1);
    CHECK(count_type(TGW_MSG_HEARTBEAT) == 5);
}

static void test_sequence_numbers_never_wrap_a_new_boot_starts_instead(void) {
    tgw_node_config_t c = config();
    reset_host();
    CHECK(start(&c));
    node.seq = UINT32_MAX - 1u;
    clear_sent();
    event_window(1);
    CHECK(last_of(TGW_MSG_EVENT).header.seq == UINT32_MAX);
    clear_sent();
    event_window(2);
    run_ms(1);
    CHECK(count_type(TGW_MSG_EVENT) == 0);
    CHECK(host.reboots == 1);
    CHECK(start(&c) && node.persist.boot_id == 2 && node.seq == 0);
    event_window(2);
    CHECK(last_of(TGW_MSG_EVENT).header.seq == 1);
}

static void test_sensor_faults_and_failed_inference_are_counted_not_sent(void) {
    tgw_node_config_t c = config();
    reset_host();
    CHECK(start(&c));
    clear_sent();
    host.sensor_fault = true;
    event_window(1);
    CHECK(node.stats.sensor_faults == 4 && count_type(TGW_MSG_EVENT) == 0);
    host.sensor_fault = false;
    fail_inference = true;
    event_window(1);
    CHECK(node.stats.inference_failures == 1 && count_type(TGW_MSG_EVENT) == 0);
    fail_inference = false;
    event_window(1);
    CHECK(count_type(TGW_MSG_EVENT) == 1);
}

static void test_a_loop_that_fell_behind_skips_ahead(void) {
    tgw_node_config_t c = config();
    reset_host();
    CHECK(start(&c));
    host.now_ms += 10000; /* a stall: 1000 samples due at once */
    tgw_node_poll(&node);
    CHECK(node.stats.samples_skipped == 1000 && node.stats.inferences == 0);
    event_window(1);
    CHECK(node.stats.inferences == 1);
}

/* ---- commands ----------------------------------------------------------------- */

static void test_every_command_is_answered(void) {
    tgw_node_config_t c = config();
    const uint8_t thr[2] = {0x10, 0x27}; /* 10000 */
    const uint8_t rate[4] = {0xE8, 0x03, 0, 0}; /* 1000 Hz */
    const uint8_t too_fast[4] = {0xE9, 0x03, 0, 0};
    const uint8_t zero4[4] = {0, 0, 0, 0};
    const uint8_t period[2] = {7, 0};
    const uint8_t zero2[2] = {0, 0};
    tgw_command_ack_t a;
    reset_host();
    CHECK(start(&c));
    a = command(TGW_CMD_PING, NULL, 0);
    CHECK(a.status == TGW_STATUS_OK && a.command == TGW_CMD_PING);
    CHECK(command(TGW_CMD_PING, thr, 1).status == TGW_STATUS_BAD_ARGUMENT);
    a = command(TGW_CMD_GET_INFO, NULL, 0);
    CHECK(a.status == TGW_STATUS_OK && decoded(host.n_sent - 1).header.type == TGW_MSG_INFO);
    CHECK(command(TGW_CMD_SET_THRESHOLD, thr, 2).status == TGW_STATUS_OK);
    CHECK(node.cfg.decision.threshold == 10000 && host.storage.threshold == 10000);
    CHECK(command(TGW_CMD_SET_THRESHOLD, thr, 1).status == TGW_STATUS_BAD_ARGUMENT);
    CHECK(command(TGW_CMD_SET_SAMPLE_RATE, rate, 4).status == TGW_STATUS_OK);
    CHECK(host.rate_set == 1000 && host.storage.sample_rate_hz == 1000);
    CHECK(command(TGW_CMD_SET_SAMPLE_RATE, too_fast, 4).status == TGW_STATUS_BAD_ARGUMENT);
    CHECK(command(TGW_CMD_SET_SAMPLE_RATE, zero4, 4).status == TGW_STATUS_BAD_ARGUMENT);
    CHECK(command(TGW_CMD_SET_SAMPLE_RATE, rate, 2).status == TGW_STATUS_BAD_ARGUMENT);
    CHECK(command(TGW_CMD_SET_HEARTBEAT_PERIOD, period, 2).status == TGW_STATUS_OK);
    CHECK(command(TGW_CMD_SET_HEARTBEAT_PERIOD, zero2, 2).status == TGW_STATUS_BAD_ARGUMENT);
    CHECK(command(0x7F, NULL, 0).status == TGW_STATUS_UNKNOWN_COMMAND);
    CHECK(node.persist.heartbeat_period_s == 7);
    /* the settings survive a reboot */
    a = command(TGW_CMD_REBOOT, NULL, 0);
    CHECK(a.status == TGW_STATUS_OK && host.reboots == 0); /* answered first... */
    tgw_node_poll(&node);
    CHECK(host.reboots == 1); /* ...then reset */
    clear_sent();
    CHECK(start(&c));
    CHECK(node.persist.boot_id == 2 && node.persist.threshold == 10000);
    CHECK(node.persist.sample_rate_hz == 1000 && node.persist.heartbeat_period_s == 7);
    CHECK(decoded(0).body.info.threshold == 10000 && decoded(0).body.info.heartbeat_period_s == 7);
}

static void test_a_change_the_hardware_or_storage_refuses_is_not_applied(void) {
    tgw_node_config_t c = config();
    const uint8_t rate[4] = {50, 0, 0, 0};
    const uint8_t thr[2] = {1, 0};
    reset_host();
    CHECK(start(&c));
    host.rate_refused = true;
    CHECK(command(TGW_CMD_SET_SAMPLE_RATE, rate, 4).status == TGW_STATUS_FAILED);
    CHECK(node.persist.sample_rate_hz == 100);
    host.rate_refused = false;
    host.save_fails = true;
    CHECK(command(TGW_CMD_SET_THRESHOLD, thr, 2).status == TGW_STATUS_FAILED);
    CHECK(node.cfg.decision.threshold == 30000 && node.persist.threshold == 30000);
    CHECK(command(TGW_CMD_SET_SAMPLE_RATE, rate, 4).status == TGW_STATUS_FAILED);
    CHECK(node.persist.sample_rate_hz == 100 && host.rate_set == 100);
    CHECK(node.stats.storage_failures == 2);
}

/* ---- what the node refuses --------------------------------------------------- */

static void test_downlink_for_another_node_or_boot_or_garbage_changes_nothing(void) {
    tgw_node_config_t c = config();
    const uint8_t junk[5] = {1, 0x82, 0, 1, 2};
    uint8_t buf[64];
    size_t len;
    reset_host();
    CHECK(start(&c));
    event_window(1);
    downlink(TGW_MSG_ACK, 2, 1, NULL, 1, NULL); /* another boot */
    CHECK(node.ring.count == 1 && node.stats.rx_ignored == 1);
    len = encode_downlink(TGW_MSG_ACK, c.node_id + 1u, 1, 1, NULL, 1, NULL, buf, sizeof buf);
    tgw_node_receive(&node, buf, len); /* another node */
    CHECK(node.ring.count == 1 && node.stats.rx_ignored == 2);
    tgw_node_receive(&node, junk, sizeof junk);
    CHECK(node.stats.rx_errors == 1);
    /* an uplink type sent down */
    len = encode_downlink(TGW_MSG_HEARTBEAT, 0, 1, 1, NULL, 1, NULL, buf, sizeof buf);
    tgw_node_receive(&node, buf, len);
    CHECK(node.stats.rx_errors == 2 && node.ring.count == 1);
    ack(1);
    CHECK(node.ring.count == 0);
}

#if TGW_ENABLE_HMAC
static void test_a_keyed_node_signs_and_refuses_unsigned_forged_and_replayed_downlink(void) {
    tgw_node_config_t c = config();
    tgw_command_t ping = {7, TGW_CMD_PING, 0, NULL};
    uint8_t other[32];
    reset_host();
    c.key = KEY;
    c.key_len = sizeof KEY;
    CHECK(start(&c));
    CHECK(decoded(0).body.info.capabilities & TGW_CAP_AUTH);
    CHECK(tgw_verify(host.sent[0].bytes, host.sent[0].len, KEY, sizeof KEY));
    CHECK(tgw_verify(host.sent[1].bytes, host.sent[1].len, KEY, sizeof KEY));
    event_window(1);
    clear_sent();
    downlink(TGW_MSG_COMMAND, 1, 1, &ping, 0, NULL); /* unsigned */
    memcpy(other, KEY, sizeof other);
    other[0] ^= 1u;
    downlink(TGW_MSG_COMMAND, 1, 1, &ping, 0, other); /* another key */
    CHECK(host.n_sent == 0 && node.stats.rx_errors == 2);
    downlink(TGW_MSG_COMMAND, 1, 5, &ping, 0, KEY);
    CHECK(count_type(TGW_MSG_COMMAND_ACK) == 1);
    CHECK(tgw_verify(host.sent[0].bytes, host.sent[0].len, KEY, sizeof KEY));
    downlink(TGW_MSG_COMMAND, 1, 5, &ping, 0, KEY); /* replayed */
    downlink(TGW_MSG_ACK, 1, 4, NULL, 1, KEY);      /* an older downlink seq */
    CHECK(count_type(TGW_MSG_COMMAND_ACK) == 1 && node.ring.count == 1);
    CHECK(node.stats.rx_ignored == 2);
    downlink(TGW_MSG_ACK, 1, 6, NULL, 1, KEY);
    CHECK(node.ring.count == 0);
}
#else
static void test_without_hmac_a_keyed_configuration_is_refused(void) {
    tgw_node_config_t c = config();
    reset_host();
    c.key = KEY;
    c.key_len = sizeof KEY;
    CHECK(!start(&c) && host.n_sent == 0);
}
#endif

/* ---- links ----------------------------------------------------------------------- */

typedef struct {
    uint8_t bytes[4096];
    size_t len;
} wire_t;

static bool wire_write(void *state, const uint8_t *data, size_t len) {
    wire_t *w = (wire_t *)state;
    if (w->len + len > sizeof w->bytes) {
        return false;
    }
    memcpy(w->bytes + w->len, data, len);
    w->len += len;
    return true;
}

static void test_serial_link_frames_and_deframes_and_counts_bad_frames(void) {
    tgw_node_config_t c = config();
    tgw_serial_link_t link;
    wire_t wire;
    uint8_t msg[64];
    size_t len;
    tgw_deframer_t d;
    uint8_t dbuf[TGW_MAX_FRAME_SIZE];
    size_t i;
    int messages = 0;
    reset_host();
    CHECK(start(&c));
    event_window(1);
    memset(&wire, 0, sizeof wire);
    tgw_serial_link_init(&link, wire_write, &wire);
    CHECK(tgw_serial_link_send(&link, host.sent[host.n_sent - 1].bytes,
                               host.sent[host.n_sent - 1].len));
    tgw_deframer_init(&d, dbuf, sizeof dbuf);
    for (i = 0; i < wire.len; i++) {
        if (tgw_deframer_feed(&d, wire.bytes[i]) == TGW_DEFRAME_MESSAGE) {
            messages++;
            CHECK(d.message_len == host.sent[host.n_sent - 1].len);
        }
    }
    CHECK(messages == 1);
    /* downlink: an ACK frame, once with a flipped bit, once whole */
    len = encode_downlink(TGW_MSG_ACK, 0, 1, 1, NULL, 1, NULL, msg, sizeof msg);
    wire.len = 0;
    CHECK(tgw_serial_link_send(&link, msg, len));
    wire.bytes[6] ^= 0x10u;
    tgw_serial_link_feed(&link, &node, wire.bytes, wire.len);
    CHECK(node.stats.rx_errors == 1 && node.ring.count == 1);
    wire.len = 0;
    CHECK(tgw_serial_link_send(&link, msg, len));
    tgw_serial_link_feed(&link, &node, wire.bytes, wire.len);
    CHECK(node.ring.count == 0);
    /* a frame longer than any downlink is refused without being buffered */
    memset(wire.bytes, 0x55, 600);
    tgw_serial_link_feed(&link, &node, wire.bytes, 600);
    wire.bytes[0] = 0;
    tgw_serial_link_feed(&link, &node, wire.bytes, 1);
    CHECK(node.stats.rx_errors == 2);
}

typedef struct {
    tgw_reassembler_t r;
    uint8_t buf[TGW_MAX_MESSAGE_SIZE];
    int messages;
    int fragments;
    size_t last_len;
} gatt_t;

static bool gatt_notify(void *state, const uint8_t *frag, size_t len) {
    gatt_t *g = (gatt_t *)state;
    g->fragments++;
    if (len > TGW_BLE_MIN_ATT_MTU - 3u) {
        return false;
    }
    if (tgw_reassembler_push(&g->r, frag, len) == TGW_REASM_MESSAGE) {
        g->messages++;
        g->last_len = g->r.len;
    }
    return true;
}

static void test_ble_link_fragments_at_the_mtu_and_reassembles_writes(void) {
    tgw_node_config_t c = config();
    tgw_ble_link_t link;
    gatt_t gatt;
    uint8_t msg[64], frag[TGW_BLE_MIN_ATT_MTU];
    size_t len, flen, n_frag, i;
    reset_host();
    CHECK(start(&c));
    event_window(1);
    memset(&gatt, 0, sizeof gatt);
    tgw_reassembler_init(&gatt.r, gatt.buf, sizeof gatt.buf);
    tgw_ble_link_init(&link, gatt_notify, &gatt);
    tgw_ble_link_set_mtu(&link, 5); /* below the minimum: the minimum */
    CHECK(tgw_ble_link_send(&link, host.sent[host.n_sent - 1].bytes,
                            host.sent[host.n_sent - 1].len));
    CHECK(gatt.messages == 1 && gatt.last_len == host.sent[host.n_sent - 1].len);
    CHECK(memcmp(gatt.buf, host.sent[host.n_sent - 1].bytes, gatt.last_len) == 0);
    len = encode_downlink(TGW_MSG_ACK, 0, 1, 1, NULL, 1, NULL, msg, sizeof msg);
    n_frag = tgw_fragment_count(len, TGW_BLE_MIN_ATT_MTU);
    CHECK(n_frag == 2);
    CHECK(tgw_fragment(msg, len, 9, 1, TGW_BLE_MIN_ATT_MTU, frag, &flen));
    tgw_ble_link_write(&link, &node, frag, flen); /* out of order */
    CHECK(node.stats.rx_errors == 1 && node.ring.count == 1);
    for (i = 0; i < n_frag; i++) {
        CHECK(tgw_fragment(msg, len, 9, (uint8_t)i, TGW_BLE_MIN_ATT_MTU, frag, &flen));
        tgw_ble_link_write(&link, &node, frag, flen);
    }
    CHECK(node.ring.count == 0);
}

/* ---- the replay backend ------------------------------------------------------ */

static void test_replay_reports_the_recorded_output_and_nothing_else(void) {
    static const int8_t windows[3 * 2] = {1, 2, 3, 4, 5, 6};
    static const int8_t outputs[3 * 2] = {127, -128, -128, 127, 0, -1};
    tgw_replay_t r = {windows, outputs, 3, 2, 2, 0, 0};
    const int8_t w1[2] = {3, 4}, w2[2] = {5, 6}, unknown[2] = {9, 9};
    uint16_t s[2];
    CHECK(tgw_replay_invoke(&r, w1, 2, s) && s[0] == 0 && s[1] == 65535);
    CHECK(r.next == 2);
    CHECK(tgw_replay_invoke(&r, w2, 2, s) && s[0] == 128u * 257u && s[1] == 127u * 257u);
    CHECK(tgw_replay_invoke(&r, windows, 2, s) && s[0] == 65535);
    CHECK(!tgw_replay_invoke(&r, unknown, 2, s) && r.misses == 1);
    CHECK(!tgw_replay_invoke(&r, w1, 1, s) && r.misses == 2);
    CHECK(tgw_score_from_softmax_q(-128) == 0 && tgw_score_from_softmax_q(127) == 65535);
}

int main(void) {
    RUN(test_boot_id_counts_up_and_is_stored_before_anything_is_sent);
    RUN(test_erased_or_corrupt_storage_starts_at_boot_1);
    RUN(test_storage_that_cannot_store_the_boot_id_stops_the_start);
    RUN(test_a_configuration_that_does_not_fit_is_refused);
    RUN(test_threshold_debounce_and_cooldown);
    RUN(test_cooldown_across_the_uptime_wrap_and_the_label_mask);
    RUN(test_quantise_rounds_like_tflite_and_saturates);
    RUN(test_windows_are_oldest_first_and_hop);
    RUN(test_an_event_carries_its_window_scores_and_the_next_seq);
    RUN(test_acks_free_the_ring_and_unacked_events_are_resent_byte_for_byte);
    RUN(test_link_up_resends_everything_unacknowledged_at_once);
    RUN(test_ring_overflow_is_counted_and_the_floor_is_the_oldest_held);
    RUN(test_heartbeats_keep_their_period);
    RUN(test_sequence_numbers_never_wrap_a_new_boot_starts_instead);
    RUN(test_sensor_faults_and_failed_inference_are_counted_not_sent);
    RUN(test_a_loop_that_fell_behind_skips_ahead);
    RUN(test_every_command_is_answered);
    RUN(test_a_change_the_hardware_or_storage_refuses_is_not_applied);
    RUN(test_downlink_for_another_node_or_boot_or_garbage_changes_nothing);
#if TGW_ENABLE_HMAC
    RUN(test_a_keyed_node_signs_and_refuses_unsigned_forged_and_replayed_downlink);
#else
    RUN(test_without_hmac_a_keyed_configuration_is_refused);
#endif
    RUN(test_serial_link_frames_and_deframes_and_counts_bad_frames);
    RUN(test_ble_link_fragments_at_the_mtu_and_reassembles_writes);
    RUN(test_replay_reports_the_recorded_output_and_nothing_else);
    printf("%d passed, %d failed\n", passed, failures);
    return failures == 0 ? 0 : 1;
}
