/*
 * tinyml-gateway reference node: the portable core.
 *
 * Samples -> feature window -> inference -> decision -> EVENT, with HEARTBEAT,
 * INFO, LOG, COMMAND handling and the retransmit ring of docs/protocol.md. C99,
 * no malloc, no board headers: everything the core needs from the hardware is
 * in tgw_hal_t, the model is behind tgw_model_t, and every buffer is in
 * tgw_node_t, which the board allocates (statically) and sizes with the
 * TGW_NODE_* macros below.
 *
 * Threading: the core is not reentrant. Call every tgw_node_* function from
 * one context (the main loop); an RX interrupt should queue bytes for the loop
 * rather than call tgw_node_receive itself.
 */
#ifndef TGW_NODE_H
#define TGW_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tgw_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time sizes. A board may override them before including this header. */
#ifndef TGW_NODE_MAX_WINDOW
#define TGW_NODE_MAX_WINDOW 600u /* int8 values in one feature window (100 x 6) */
#endif
#ifndef TGW_NODE_MAX_AXES
#define TGW_NODE_MAX_AXES 8u
#endif
#ifndef TGW_NODE_RING_SLOTS
#define TGW_NODE_RING_SLOTS 16u /* EVENTs kept until acknowledged */
#endif
#ifndef TGW_NODE_SLOT_SIZE
/* an EVENT with every score and the whole window, signed */
#define TGW_NODE_SLOT_SIZE                                                                \
    (TGW_HEADER_SIZE + 4u + 1u + 2u + 4u + 1u + 2u * TGW_MAX_SCORES + 1u +                \
     2u * TGW_MAX_WINDOW_RANK + 4u + 1u + TGW_NODE_MAX_WINDOW + TGW_AUTH_TAG_SIZE)
#endif
#ifndef TGW_NODE_RX_MAX
#define TGW_NODE_RX_MAX 96u /* largest downlink message: COMMAND with 32 arg bytes */
#endif

/* ---- What the core keeps across reboots (the storage HAL holds the bytes) ---- */
typedef struct {
    uint32_t magic; /* TGW_PERSIST_MAGIC; anything else reads as "never saved" */
    uint32_t boot_id;
    uint32_t sample_rate_hz;
    uint16_t threshold;
    uint16_t heartbeat_period_s;
    uint32_t check; /* CRC-32 of the fields above */
} tgw_persist_t;

#define TGW_PERSIST_MAGIC 0x31574754u /* "TGW1" */

/* ---- Hardware abstraction ------------------------------------------------
 * Required: millis, read_sample, send, load, save. The rest may be NULL. */
typedef struct {
    void *ctx; /* passed to every function */
    /* Milliseconds since boot; wraps at 2^32 (the core compares with unsigned
     * differences). */
    uint32_t (*millis)(void *ctx);
    /* Microseconds, for inference_us (NULL: reported as 0). May wrap. */
    uint32_t (*micros)(void *ctx);
    /* One sample of n_axes values in the model's physical units. False: no
     * sample (sensor fault); the core counts it and the window waits. */
    bool (*read_sample)(void *ctx, float *axes, uint8_t n_axes);
    /* Tells the sensor its new rate. False: the sensor cannot do it (the
     * command answers FAILED and the old rate stays). NULL: always accepted. */
    bool (*set_sample_rate)(void *ctx, uint32_t hz);
    /* Sends one whole protocol message; the link frames it (serial: COBS +
     * CRC, tgw_serial_link_t; BLE: fragments, tgw_ble_link_t). False: not sent
     * (link down, buffer full); an EVENT stays in the ring and is resent. */
    bool (*send)(void *ctx, const uint8_t *msg, size_t len);
    /* Storage: load returns false when nothing is stored; save must be durable
     * when it returns true (flash page, EEPROM, RTC backup register). */
    bool (*load)(void *ctx, tgw_persist_t *out);
    bool (*save)(void *ctx, const tgw_persist_t *in);
    uint16_t (*battery_mv)(void *ctx);      /* NULL: 0, not measured */
    int16_t (*temperature_cdeg)(void *ctx); /* NULL: TGW_TEMPERATURE_UNKNOWN */
    void (*watchdog_kick)(void *ctx);       /* called once per tgw_node_poll */
    /* Sleeps until the deadline (millis) or until the link has received
     * something, whichever comes first. NULL: tgw_node_sleep returns at once. */
    void (*sleep_until)(void *ctx, uint32_t deadline_ms);
    /* Resets the MCU. Called from tgw_node_poll after the REBOOT command's
     * answer was sent. On a host build it may return: the core stops. */
    void (*reboot)(void *ctx);
} tgw_hal_t;

/* ---- Inference backend --------------------------------------------------- */
typedef struct {
    void *ctx;
    uint32_t model_id;      /* first 4 bytes of sha256, little-endian */
    const uint8_t *sha256;  /* 32 bytes */
    const char *name;
    const char *const *labels;
    uint8_t n_labels;       /* = number of outputs, at most TGW_MAX_SCORES */
    uint16_t window_samples;
    uint8_t n_axes;
    float input_scale;      /* the model input's int8 quantisation */
    int8_t input_zero_point;
    /* Runs the model on window (window_samples x n_axes int8 values, oldest
     * sample first) and writes n_labels scores on the protocol's score scale
     * (0..TGW_SCORE_SCALE). False: inference failed; the window is dropped
     * and counted. */
    bool (*invoke)(void *ctx, const int8_t *window, size_t len, uint16_t *scores);
} tgw_model_t;

/* An int8 softmax output (scale 1/256, zero point -128) on the score scale. */
static inline uint16_t tgw_score_from_softmax_q(int8_t q) {
    return (uint16_t)(((int32_t)q + 128) * 257);
}

/* ---- Decision ------------------------------------------------------------ */
typedef struct {
    uint16_t threshold;   /* score scale; persisted, SET_THRESHOLD changes it */
    uint8_t debounce;     /* windows in a row with the same label over threshold (>= 1) */
    uint32_t cooldown_ms; /* after an event, none for this long */
    uint32_t label_mask;  /* bit i: label i may raise an event */
} tgw_decision_config_t;

typedef struct {
    uint8_t label; /* of the current streak */
    uint8_t streak;
    bool fired;    /* an event was raised at least once */
    uint32_t last_event_ms;
} tgw_decision_t;

void tgw_decision_reset(tgw_decision_t *d);
/* Feeds one inference; true when it raises an event (then label/score are the
 * event's). Pure: no HAL, no globals. */
bool tgw_decide(tgw_decision_t *d, const tgw_decision_config_t *cfg, uint8_t label,
                uint16_t score, uint32_t now_ms);
/* The winning class (lowest index on a tie). */
uint8_t tgw_top_label(const uint16_t *scores, uint8_t n);

/* ---- Sample ring -> feature window --------------------------------------- */
typedef struct {
    int8_t values[TGW_NODE_MAX_WINDOW]; /* window_samples x n_axes, a ring of samples */
    uint16_t window_samples;
    uint8_t n_axes;
    float inv_scale;
    int8_t zero_point;
    uint16_t next;   /* sample slot written next */
    uint16_t filled; /* samples held, up to window_samples */
    uint16_t since_window;
} tgw_sampler_t;

bool tgw_sampler_init(tgw_sampler_t *s, uint16_t window_samples, uint8_t n_axes, float scale,
                      int8_t zero_point);
/* Quantises one sample into the ring: q = round(x / scale) + zero_point,
 * saturated to int8 (a NaN reads as the zero point). */
void tgw_sampler_push(tgw_sampler_t *s, const float *axes);
/* True when hop samples have arrived since the last window and the ring is
 * full: then writes the window, oldest sample first, to out. */
bool tgw_sampler_window(tgw_sampler_t *s, uint16_t hop, int8_t *out);
int8_t tgw_quantise(float x, float inv_scale, int8_t zero_point);

/* ---- The node ------------------------------------------------------------ */
typedef struct {
    uint64_t node_id;             /* nonzero, unique in the fleet */
    const char *firmware_version; /* at most TGW_MAX_STRING bytes */
    const uint8_t *key;           /* HMAC key (16..64 bytes) or NULL */
    size_t key_len;
    uint16_t hop_samples;         /* new samples between windows (window_samples: none shared) */
    bool attach_window;           /* send the feature window with each EVENT */
    bool send_scores;             /* send every class's score with each EVENT */
    uint32_t retx_timeout_ms;     /* resend an unacknowledged EVENT after this long */
    uint32_t max_sample_rate_hz;  /* SET_SAMPLE_RATE above this answers BAD_ARGUMENT */
    tgw_decision_config_t decision;
    /* used when storage holds nothing (first boot, erased flash) */
    uint32_t default_sample_rate_hz;
    uint16_t default_heartbeat_period_s;
} tgw_node_config_t;

typedef struct {
    uint32_t inferences;
    uint32_t inference_failures;
    uint32_t sensor_faults;
    uint32_t samples_skipped; /* the loop fell behind its sample clock */
    uint32_t events;
    uint32_t send_failures;
    uint32_t retransmissions;
    uint16_t rx_errors;   /* refused downlink: CRC, COBS, auth, not decodable */
    uint32_t rx_ignored;  /* well-formed but not for this node or boot, or a replay */
    uint32_t storage_failures;
} tgw_node_stats_t;

typedef struct {
    tgw_hal_t hal;
    const tgw_model_t *model;
    tgw_node_config_t cfg;
    tgw_persist_t persist;
    tgw_node_stats_t stats;
    tgw_decision_t decision;
    tgw_sampler_t sampler;
    tgw_ring_t ring;
    tgw_ring_slot_t ring_slots[TGW_NODE_RING_SLOTS];
    uint8_t ring_mem[TGW_NODE_RING_SLOTS * TGW_NODE_SLOT_SIZE];
    uint8_t tx[TGW_NODE_SLOT_SIZE];
    int8_t window[TGW_NODE_MAX_WINDOW];
    uint32_t seq;               /* last EVENT's */
    uint32_t downlink_seq;      /* last accepted downlink seq (keyed nodes) */
    uint32_t next_heartbeat_ms;
    uint32_t sample_epoch_ms;   /* samples are due at epoch + n / rate */
    uint32_t samples_taken;     /* since the epoch */
    bool reboot_pending;
    bool stopped;               /* the host HAL's reboot returned */
} tgw_node_t;

/* Loads the persisted state, increments and saves the boot id (before
 * anything is sent), and sends INFO and a first HEARTBEAT. False when the
 * configuration or the model does not fit the compiled sizes, or the boot id
 * could not be stored (the node must not send with a boot id it may repeat). */
bool tgw_node_start(tgw_node_t *n, const tgw_hal_t *hal, const tgw_model_t *model,
                    const tgw_node_config_t *cfg);
/* Does everything due now: samples, inference, resends, heartbeat, a pending
 * reboot. Call it in the main loop, and after tgw_node_receive. */
void tgw_node_poll(tgw_node_t *n);
/* The next time (millis) poll has work, for the board's sleep. */
uint32_t tgw_node_next_deadline(const tgw_node_t *n);
/* Sleeps through the HAL until the next deadline. */
void tgw_node_sleep(tgw_node_t *n);
/* One whole downlink message (ACK or COMMAND) from the link. */
void tgw_node_receive(tgw_node_t *n, const uint8_t *msg, size_t len);
/* The link refused a frame (bad CRC or COBS, bad fragment): counted in
 * HEARTBEAT's rx_errors. */
void tgw_node_rx_error(tgw_node_t *n);
/* The link (re)connected: sends INFO and makes every unacknowledged EVENT due. */
void tgw_node_link_up(tgw_node_t *n);
/* Sends a LOG line (not kept for resending). */
bool tgw_node_log(tgw_node_t *n, uint8_t level, const char *text);
/* The INFO message as sent (the BLE info characteristic serves it). */
bool tgw_node_encode_info(tgw_node_t *n, uint8_t *buf, size_t cap, size_t *len);

/* ---- Persisted state helpers (pure) --------------------------------------- */
void tgw_persist_seal(tgw_persist_t *p);
bool tgw_persist_valid(const tgw_persist_t *p);

#ifdef __cplusplus
}
#endif

#endif /* TGW_NODE_H */
