/*
 * tinyml-gateway wire protocol v1: the node side.
 *
 * This header is the source of truth for the protocol's constants; the Python
 * gateway pins its own copy to it (tests/test_protocol_pinned.py), so change a
 * value here first and let that test tell you what else has to follow.
 * The normative description is docs/protocol.md.
 *
 * Conventions (nanopb style): no malloc, every buffer is the caller's, functions
 * return bool and leave the first error message in the context that failed.
 * Compile-time switches:
 *   TGW_ENABLE_HMAC (default 1)          HMAC-SHA256 message authentication.
 *   TGW_ENABLE_GATEWAY_SIDE (default 1)  the gateway's half: decoding uplink
 *       messages (EVENT..COMMAND_ACK) and advertisements, encoding COMMAND and
 *       ACK. Host tools and tests need it; a node's firmware sets it to 0.
 */
#ifndef TGW_PROTOCOL_H
#define TGW_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef TGW_ENABLE_HMAC
#define TGW_ENABLE_HMAC 1
#endif

#ifndef TGW_ENABLE_GATEWAY_SIDE
#define TGW_ENABLE_GATEWAY_SIDE 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Sizes and limits ------------------------------------------------- */
#define TGW_PROTOCOL_VERSION 1
#define TGW_HEADER_SIZE 23
#define TGW_CRC_SIZE 4
#define TGW_AUTH_TAG_SIZE 8
#define TGW_MAX_MESSAGE_SIZE 1024 /* header + payload + auth tag */
/* COBS adds one byte per 254 and one more; two delimiters frame it. */
#define TGW_COBS_MAX(n) ((n) + (n) / 254u + 1u)
#define TGW_MAX_FRAME_SIZE (TGW_COBS_MAX(TGW_MAX_MESSAGE_SIZE + TGW_CRC_SIZE) + 2u)
#define TGW_MAX_SCORES 32
#define TGW_MAX_LABELS 32
#define TGW_MAX_STRING 63
#define TGW_MAX_LOG_TEXT 200
#define TGW_MAX_WINDOW_RANK 4
#define TGW_MAX_COMMAND_ARGS 32
#define TGW_MAX_COMMAND_RESULT 64
#define TGW_MODEL_HASH_SIZE 32
#define TGW_SCORE_SCALE 65535u       /* score = raw / 65535, 0..1 */
#define TGW_TEMPERATURE_UNKNOWN (-32768) /* centi-degrees Celsius */

/* ---- Header flags ----------------------------------------------------- */
#define TGW_FLAG_AUTH 0x01u /* an 8-byte HMAC-SHA256 tag ends the message */

/* ---- Message types ---------------------------------------------------- */
#define TGW_MSG_EVENT 0x01
#define TGW_MSG_HEARTBEAT 0x02
#define TGW_MSG_INFO 0x03
#define TGW_MSG_LOG 0x04
#define TGW_MSG_COMMAND_ACK 0x05
#define TGW_MSG_COMMAND 0x81 /* gateway -> node */
#define TGW_MSG_ACK 0x82     /* gateway -> node */

/* ---- Commands and their status codes ---------------------------------- */
#define TGW_CMD_PING 0x01
#define TGW_CMD_GET_INFO 0x02
#define TGW_CMD_SET_THRESHOLD 0x03        /* arg: u16 threshold, score scale */
#define TGW_CMD_SET_SAMPLE_RATE 0x04      /* arg: u32 Hz */
#define TGW_CMD_SET_HEARTBEAT_PERIOD 0x05 /* arg: u16 seconds */
#define TGW_CMD_REBOOT 0x06

#define TGW_STATUS_OK 0x00
#define TGW_STATUS_UNKNOWN_COMMAND 0x01
#define TGW_STATUS_BAD_ARGUMENT 0x02
#define TGW_STATUS_BUSY 0x03
#define TGW_STATUS_FAILED 0x04

#define TGW_LOG_DEBUG 0
#define TGW_LOG_INFO 1
#define TGW_LOG_WARNING 2
#define TGW_LOG_ERROR 3

/* INFO capability bits */
#define TGW_CAP_DOWNLINK 0x01 /* receives ACK and COMMAND */
#define TGW_CAP_WINDOW 0x02   /* can attach feature windows to events */
#define TGW_CAP_AUTH 0x04     /* signs its messages */

/* ---- BLE -------------------------------------------------------------- */
#define TGW_BLE_SERVICE_UUID "7e1a0001-5c6b-4f1e-9d3a-6b8f2a9c0d11"
#define TGW_BLE_EVENT_CHAR_UUID "7e1a0002-5c6b-4f1e-9d3a-6b8f2a9c0d11"
#define TGW_BLE_COMMAND_CHAR_UUID "7e1a0003-5c6b-4f1e-9d3a-6b8f2a9c0d11"
#define TGW_BLE_INFO_CHAR_UUID "7e1a0004-5c6b-4f1e-9d3a-6b8f2a9c0d11"
#define TGW_BLE_COMPANY_ID 0xFFFF /* until one is assigned */
#define TGW_FRAGMENT_HEADER_SIZE 2
#define TGW_FRAGMENT_LAST 0x80u
#define TGW_MAX_FRAGMENTS 128
#define TGW_BLE_MIN_ATT_MTU 23
#define TGW_BLE_MAX_ATT_MTU 247
#define TGW_ADV_SIZE_EVENT 20
#define TGW_ADV_SIZE_HEARTBEAT 20
#define TGW_ADV_TAG_SIZE 4
#define TGW_ADV_FLAG_AUTH 0x08u
#define TGW_ADV_MAX_SIZE 24 /* manufacturer data after the company id */

/* ---- Messages --------------------------------------------------------- */
typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint64_t node_id;
    uint32_t boot_id;   /* persisted counter, +1 every boot */
    uint32_t seq;       /* EVENT: its number in this boot; others: last EVENT's */
    uint32_t uptime_ms; /* node uptime when the message (or event) was made */
} tgw_header_t;

typedef struct {
    const char *ptr; /* not NUL-terminated; points into a caller buffer */
    uint8_t len;
} tgw_str_t;

typedef struct {
    uint8_t rank; /* 0: no window */
    uint16_t dims[TGW_MAX_WINDOW_RANK];
    float scale;
    int8_t zero_point;
    const int8_t *data; /* product(dims) values, caller-owned */
    uint16_t len;
} tgw_window_t;

typedef struct {
    uint32_t model_id; /* first 4 bytes of the model's SHA-256, little-endian */
    uint8_t label;
    uint16_t score; /* TGW_SCORE_SCALE */
    uint32_t inference_us;
    uint8_t n_scores;
    uint16_t scores[TGW_MAX_SCORES];
    tgw_window_t window;
} tgw_event_t;

typedef struct {
    uint16_t battery_mv;     /* 0: not measured */
    int16_t temperature_cdeg; /* TGW_TEMPERATURE_UNKNOWN: not measured */
    uint32_t inferences;
    uint32_t events_dropped; /* lost to retransmit-ring overflow */
    uint32_t retx_floor;     /* no EVENT below this seq will be resent */
    uint16_t rx_errors;
} tgw_heartbeat_t;

typedef struct {
    uint8_t protocol_version;
    uint8_t capabilities;
    uint16_t heartbeat_period_s;
    uint32_t sample_rate_hz;
    uint16_t threshold; /* TGW_SCORE_SCALE */
    uint8_t model_sha256[TGW_MODEL_HASH_SIZE];
    tgw_str_t firmware_version;
    tgw_str_t model_name;
    uint8_t n_labels;
    tgw_str_t labels[TGW_MAX_LABELS];
} tgw_info_t;

typedef struct {
    uint8_t level;
    tgw_str_t text; /* up to TGW_MAX_LOG_TEXT bytes */
} tgw_log_t;

typedef struct {
    uint16_t request_id;
    uint8_t command;
    uint8_t arg_len;
    const uint8_t *args;
} tgw_command_t;

typedef struct {
    uint16_t request_id;
    uint8_t command;
    uint8_t status;
    uint8_t result_len;
    const uint8_t *result;
} tgw_command_ack_t;

typedef struct {
    uint32_t boot_id;
    uint32_t seq; /* every EVENT of boot_id up to seq is stored */
} tgw_ack_t;

typedef struct {
    tgw_header_t header;
    union {
        tgw_event_t event;
        tgw_heartbeat_t heartbeat;
        tgw_info_t info;
        tgw_log_t log;
        tgw_command_t command;
        tgw_command_ack_t command_ack;
        tgw_ack_t ack;
    } body;
    uint8_t tag[TGW_AUTH_TAG_SIZE]; /* valid when header.flags has AUTH */
} tgw_message_t;

/* ---- Message codec ---------------------------------------------------- */

/* Encodes msg into buf. With key != NULL the AUTH flag is set and the tag
 * appended; with key == NULL the flag is cleared. Returns false and sets
 * *error when buf is too small or a field is out of range. */
bool tgw_encode(const tgw_message_t *msg, const uint8_t *key, size_t key_len,
                uint8_t *buf, size_t cap, size_t *out_len, const char **error);

/* Decodes buf (one whole message, no CRC). Strings, windows, args and results
 * point into buf. Trailing payload bytes after the known fields are ignored
 * (forward compatibility inside v1). Does not check the tag: see
 * tgw_verify. */
bool tgw_decode(const uint8_t *buf, size_t len, tgw_message_t *msg, const char **error);

#if TGW_ENABLE_HMAC
/* True when buf (a whole message with the AUTH flag) carries a valid tag. */
bool tgw_verify(const uint8_t *buf, size_t len, const uint8_t *key, size_t key_len);
void tgw_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *data,
                     size_t len, uint8_t out[32]);
#endif

/* ---- Serial framing: 0x00 COBS(message || CRC-32 LE) 0x00 --------------- */

typedef bool (*tgw_write_fn)(void *state, const uint8_t *data, size_t len);

uint32_t tgw_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Writes one frame through write(). Stops at the first failed write. */
bool tgw_frame_write(const uint8_t *msg, size_t len, tgw_write_fn write, void *state);

typedef enum {
    TGW_DEFRAME_NONE = 0, /* need more bytes */
    TGW_DEFRAME_MESSAGE,  /* d->message / d->message_len are valid until next feed */
    TGW_DEFRAME_ERROR     /* a bad frame was dropped; d->error says why */
} tgw_deframe_result_t;

typedef struct {
    uint8_t *buf; /* caller-owned, at least TGW_MAX_FRAME_SIZE for any message */
    size_t cap;
    size_t len;
    bool discarding; /* an oversized frame is being skipped */
    const uint8_t *message;
    size_t message_len;
    const char *error;
    uint32_t frames_ok;
    uint32_t frames_bad;
} tgw_deframer_t;

void tgw_deframer_init(tgw_deframer_t *d, uint8_t *buf, size_t cap);
tgw_deframe_result_t tgw_deframer_feed(tgw_deframer_t *d, uint8_t byte);

/* ---- BLE fragmentation ------------------------------------------------ */

/* Number of notifications needed for len bytes at a given ATT MTU (0 if the
 * message cannot be carried). */
uint8_t tgw_fragment_count(size_t len, uint16_t att_mtu);
/* Writes fragment `index` of msg into out (at least att_mtu - 3 bytes). */
bool tgw_fragment(const uint8_t *msg, size_t len, uint8_t msg_tag, uint8_t index,
                  uint16_t att_mtu, uint8_t *out, size_t *out_len);

typedef enum {
    TGW_REASM_NONE = 0,
    TGW_REASM_MESSAGE,
    TGW_REASM_ERROR
} tgw_reasm_result_t;

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint8_t tag;
    uint8_t next_index; /* 0: idle */
    const char *error;
} tgw_reassembler_t;

void tgw_reassembler_init(tgw_reassembler_t *r, uint8_t *buf, size_t cap);
tgw_reasm_result_t tgw_reassembler_push(tgw_reassembler_t *r, const uint8_t *frag, size_t len);

/* ---- Compact advertisement (manufacturer data, after the company id) ---- */
typedef struct {
    uint8_t kind; /* TGW_MSG_EVENT or TGW_MSG_HEARTBEAT */
    bool auth;
    uint64_t node_id;
    uint32_t boot_id;
    uint32_t seq;
    uint8_t label;        /* EVENT */
    uint16_t score;       /* EVENT */
    uint16_t battery_mv;  /* HEARTBEAT */
    int8_t temperature_c; /* HEARTBEAT, -128: not measured */
    uint8_t tag[TGW_ADV_TAG_SIZE];
} tgw_advert_t;

bool tgw_advert_encode(const tgw_advert_t *adv, const uint8_t *key, size_t key_len,
                       uint8_t *out, size_t cap, size_t *out_len);
#if TGW_ENABLE_GATEWAY_SIDE
bool tgw_advert_decode(const uint8_t *buf, size_t len, tgw_advert_t *adv);
#endif

/* ---- Retransmit ring for EVENTs (caller-owned storage) ------------------ */
typedef struct {
    uint32_t seq;
    uint32_t sent_at_ms;
    uint16_t len;
} tgw_ring_slot_t;

typedef struct {
    tgw_ring_slot_t *slots; /* n_slots entries */
    uint8_t *data;          /* n_slots * slot_size bytes */
    uint16_t n_slots;
    uint16_t slot_size;
    uint16_t head;  /* oldest */
    uint16_t count;
    uint32_t dropped; /* overwritten before they were acknowledged */
} tgw_ring_t;

void tgw_ring_init(tgw_ring_t *r, tgw_ring_slot_t *slots, uint8_t *data, uint16_t n_slots,
                   uint16_t slot_size);
/* Keeps a sent EVENT (whole message bytes) until it is acknowledged. When the
 * ring is full the oldest entry is overwritten and counted in r->dropped.
 * False only if the message is larger than a slot. */
bool tgw_ring_push(tgw_ring_t *r, uint32_t seq, const uint8_t *msg, uint16_t len,
                   uint32_t now_ms);
/* Frees every entry with seq <= ack_seq (the ring holds one boot, in order). */
void tgw_ring_ack(tgw_ring_t *r, uint32_t ack_seq);
/* The lowest seq the node can still resend; next_seq when the ring is empty. */
uint32_t tgw_ring_floor(const tgw_ring_t *r, uint32_t next_seq);
/* Returns the oldest entry unsent for timeout_ms, and stamps it as sent now. */
bool tgw_ring_next_due(tgw_ring_t *r, uint32_t now_ms, uint32_t timeout_ms,
                       const uint8_t **msg, uint16_t *len);
/* Makes every entry due at once (call after a reconnect). */
void tgw_ring_resend_all(tgw_ring_t *r, uint32_t now_ms, uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* TGW_PROTOCOL_H */
