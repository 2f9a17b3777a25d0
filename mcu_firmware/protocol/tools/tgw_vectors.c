/*
 * Golden vectors for the wire protocol, from the C side.
 *
 *   tgw_vectors gen      print the C-encoded vectors as JSON (tests/vectors/c_vectors.json)
 *   tgw_vectors decode   read "frame|advert KEYHEX|- HEX" lines, print one JSON line each
 *                        with what the C library decoded and what it re-encodes
 *
 * The Python tests decode gen's output field by field, and feed Python-encoded
 * vectors to decode, so the two implementations cannot drift apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgw_protocol.h"

/* ---- JSON output -------------------------------------------------------- */

static void hex(const uint8_t *p, size_t n) {
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
    putchar('"');
}

static void jstr(const char *p, size_t n) {
    size_t i;
    putchar('"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20u) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void dump_body(const tgw_message_t *m) {
    uint8_t i;
    switch (m->header.type) {
    case TGW_MSG_EVENT: {
        const tgw_event_t *e = &m->body.event;
        printf("{\"model_id\":%lu,\"label\":%u,\"score\":%u,\"inference_us\":%lu,\"scores\":[",
               (unsigned long)e->model_id, e->label, e->score, (unsigned long)e->inference_us);
        for (i = 0; i < e->n_scores; i++) {
            printf("%s%u", i ? "," : "", e->scores[i]);
        }
        printf("],\"window\":");
        if (e->window.rank == 0u) {
            printf("null}");
            break;
        }
        printf("{\"dims\":[");
        for (i = 0; i < e->window.rank; i++) {
            printf("%s%u", i ? "," : "", e->window.dims[i]);
        }
        printf("],\"scale\":%.9g,\"zero_point\":%d,\"data\":", (double)e->window.scale,
               e->window.zero_point);
        hex((const uint8_t *)e->window.data, e->window.len);
        printf("}}");
        break;
    }
    case TGW_MSG_HEARTBEAT: {
        const tgw_heartbeat_t *h = &m->body.heartbeat;
        printf("{\"battery_mv\":%u,\"temperature_cdeg\":%d,\"inferences\":%lu,"
               "\"events_dropped\":%lu,\"retx_floor\":%lu,\"rx_errors\":%u}",
               h->battery_mv, h->temperature_cdeg, (unsigned long)h->inferences,
               (unsigned long)h->events_dropped, (unsigned long)h->retx_floor, h->rx_errors);
        break;
    }
    case TGW_MSG_INFO: {
        const tgw_info_t *f = &m->body.info;
        printf("{\"protocol_version\":%u,\"capabilities\":%u,\"heartbeat_period_s\":%u,"
               "\"sample_rate_hz\":%lu,\"threshold\":%u,\"model_sha256\":",
               f->protocol_version, f->capabilities, f->heartbeat_period_s,
               (unsigned long)f->sample_rate_hz, f->threshold);
        hex(f->model_sha256, TGW_MODEL_HASH_SIZE);
        printf(",\"firmware_version\":");
        jstr(f->firmware_version.ptr, f->firmware_version.len);
        printf(",\"model_name\":");
        jstr(f->model_name.ptr, f->model_name.len);
        printf(",\"labels\":[");
        for (i = 0; i < f->n_labels; i++) {
            printf("%s", i ? "," : "");
            jstr(f->labels[i].ptr, f->labels[i].len);
        }
        printf("]}");
        break;
    }
    case TGW_MSG_LOG:
        printf("{\"level\":%u,\"text\":", m->body.log.level);
        jstr(m->body.log.text.ptr, m->body.log.text.len);
        printf("}");
        break;
    case TGW_MSG_COMMAND:
        printf("{\"request_id\":%u,\"command\":%u,\"args\":", m->body.command.request_id,
               m->body.command.command);
        hex(m->body.command.args, m->body.command.arg_len);
        printf("}");
        break;
    case TGW_MSG_COMMAND_ACK:
        printf("{\"request_id\":%u,\"command\":%u,\"status\":%u,\"result\":",
               m->body.command_ack.request_id, m->body.command_ack.command,
               m->body.command_ack.status);
        hex(m->body.command_ack.result, m->body.command_ack.result_len);
        printf("}");
        break;
    case TGW_MSG_ACK:
        printf("{\"boot_id\":%lu,\"seq\":%lu}", (unsigned long)m->body.ack.boot_id,
               (unsigned long)m->body.ack.seq);
        break;
    default:
        printf("null");
    }
}

static void dump_message(const tgw_message_t *m) {
    const tgw_header_t *h = &m->header;
    printf("{\"header\":{\"version\":%u,\"type\":%u,\"flags\":%u,\"node_id\":\"%016llx\","
           "\"boot_id\":%lu,\"seq\":%lu,\"uptime_ms\":%lu},\"body\":",
           h->version, h->type, h->flags, (unsigned long long)h->node_id,
           (unsigned long)h->boot_id, (unsigned long)h->seq, (unsigned long)h->uptime_ms);
    dump_body(m);
    printf(",\"tag\":");
    if ((h->flags & TGW_FLAG_AUTH) != 0u) {
        hex(m->tag, TGW_AUTH_TAG_SIZE);
    } else {
        printf("null");
    }
    printf("}");
}

static void dump_advert(const tgw_advert_t *a) {
    printf("{\"kind\":%u,\"auth\":%s,\"node_id\":\"%016llx\",\"boot_id\":%lu,\"seq\":%lu,", a->kind,
           a->auth ? "true" : "false", (unsigned long long)a->node_id, (unsigned long)a->boot_id,
           (unsigned long)a->seq);
    if (a->kind == TGW_MSG_EVENT) {
        printf("\"label\":%u,\"score\":%u", a->label, a->score);
    } else {
        printf("\"battery_mv\":%u,\"temperature_c\":%d", a->battery_mv, a->temperature_c);
    }
    printf(",\"tag\":");
    if (a->auth) {
        hex(a->tag, TGW_ADV_TAG_SIZE);
    } else {
        printf("null");
    }
    printf("}");
}

/* ---- frame helpers ------------------------------------------------------ */

typedef struct {
    uint8_t buf[TGW_MAX_FRAME_SIZE];
    size_t len;
} out_t;

static bool out_write(void *state, const uint8_t *data, size_t len) {
    out_t *o = (out_t *)state;
    if (sizeof o->buf - o->len < len) {
        return false;
    }
    memcpy(o->buf + o->len, data, len);
    o->len += len;
    return true;
}

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
    size_t n = strlen(s) / 2u;
    size_t i;
    char b[3] = {0, 0, 0};
    if (n > cap) {
        return (size_t)-1;
    }
    for (i = 0; i < n; i++) {
        b[0] = s[2 * i];
        b[1] = s[2 * i + 1];
        out[i] = (uint8_t)strtoul(b, NULL, 16);
    }
    return n;
}

/* ---- gen ---------------------------------------------------------------- */

static const uint8_t KEY[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static int8_t long_window[6 * 60];
static const char *LABELS[4] = {"idle", "walking", "running", "caf\xc3\xa9 \"quote\""};

static void header(tgw_message_t *m, uint8_t type, uint32_t seq) {
    memset(m, 0, sizeof *m);
    m->header.type = type;
    m->header.node_id = 0xa1b2c3d4e5f60718ull;
    m->header.boot_id = 12;
    m->header.seq = seq;
    m->header.uptime_ms = 3600000u + seq;
}

static int first = 1;

static void emit_frame(const char *name, const tgw_message_t *m, bool auth) {
    uint8_t msg[TGW_MAX_MESSAGE_SIZE];
    size_t len;
    const char *err = NULL;
    out_t o;
    tgw_message_t d;
    o.len = 0;
    if (!tgw_encode(m, auth ? KEY : NULL, sizeof KEY, msg, sizeof msg, &len, &err) ||
        !tgw_frame_write(msg, len, out_write, &o) || !tgw_decode(msg, len, &d, &err)) {
        fprintf(stderr, "vector %s: %s\n", name, err ? err : "frame");
        exit(1);
    }
    printf("%s\n  {\"name\":\"%s\",\"kind\":\"frame\",\"key\":", first ? "" : ",", name);
    first = 0;
    if (auth) {
        hex(KEY, sizeof KEY);
    } else {
        printf("null");
    }
    printf(",\"message_hex\":");
    hex(msg, len);
    printf(",\"frame_hex\":");
    hex(o.buf, o.len);
    printf(",\"decoded\":");
    dump_message(&d);
    printf("}");
}

static void emit_advert(const char *name, const tgw_advert_t *a, bool auth) {
    uint8_t buf[TGW_ADV_MAX_SIZE];
    size_t len;
    tgw_advert_t d;
    if (!tgw_advert_encode(a, auth ? KEY : NULL, sizeof KEY, buf, sizeof buf, &len) ||
        !tgw_advert_decode(buf, len, &d)) {
        fprintf(stderr, "vector %s\n", name);
        exit(1);
    }
    printf(",\n  {\"name\":\"%s\",\"kind\":\"advert\",\"key\":", name);
    if (auth) {
        hex(KEY, sizeof KEY);
    } else {
        printf("null");
    }
    printf(",\"advert_hex\":");
    hex(buf, len);
    printf(",\"decoded\":");
    dump_advert(&d);
    printf("}");
}

static void emit_fragments(const char *name, const tgw_message_t *m, uint16_t mtu, uint8_t tag) {
    uint8_t msg[TGW_MAX_MESSAGE_SIZE];
    uint8_t frag[TGW_BLE_MAX_ATT_MTU];
    size_t len;
    size_t flen;
    const char *err = NULL;
    uint8_t i;
    uint8_t n;
    if (!tgw_encode(m, NULL, 0, msg, sizeof msg, &len, &err)) {
        exit(1);
    }
    n = tgw_fragment_count(len, mtu);
    printf(",\n  {\"name\":\"%s\",\"kind\":\"fragments\",\"mtu\":%u,\"message_hex\":", name, mtu);
    hex(msg, len);
    printf(",\"fragments\":[");
    for (i = 0; i < n; i++) {
        if (!tgw_fragment(msg, len, tag, i, mtu, frag, &flen)) {
            exit(1);
        }
        printf("%s", i ? "," : "");
        hex(frag, flen);
    }
    printf("]}");
}

static int gen(void) {
    static const uint8_t threshold[2] = {0x50, 0xc3};
    static const uint8_t result[4] = {0xde, 0xad, 0x00, 0x01};
    static const int8_t small_window[6] = {-128, 0, 127, 0, -1, 1};
    tgw_message_t m;
    tgw_advert_t a;
    size_t i;
    for (i = 0; i < sizeof long_window; i++) {
        long_window[i] = (int8_t)((i * 37u) % 256u - 128); /* includes zeros */
    }
    printf("[");
    header(&m, TGW_MSG_EVENT, 1);
    m.body.event.model_id = 0x1a2b3c4du;
    m.body.event.label = 1;
    m.body.event.score = 58982;
    m.body.event.inference_us = 2210;
    emit_frame("event_minimal", &m, false);
    m.body.event.n_scores = 4;
    m.body.event.scores[0] = 0;
    m.body.event.scores[1] = 58982;
    m.body.event.scores[2] = 6553;
    m.body.event.scores[3] = 0;
    emit_frame("event_scores", &m, false);
    m.body.event.window.rank = 2;
    m.body.event.window.dims[0] = 2;
    m.body.event.window.dims[1] = 3;
    m.body.event.window.scale = 0.05f;
    m.body.event.window.zero_point = -128;
    m.body.event.window.data = small_window;
    m.body.event.window.len = 6;
    emit_frame("event_window", &m, false);
    emit_frame("event_window_auth", &m, true);
    m.header.seq = 0xfffffffeu;
    m.header.uptime_ms = 0xffffffffu;
    m.header.boot_id = 0xffffffffu;
    m.body.event.window.rank = 2;
    m.body.event.window.dims[0] = 6;
    m.body.event.window.dims[1] = 60;
    m.body.event.window.scale = 0.0123f;
    m.body.event.window.zero_point = 3;
    m.body.event.window.data = long_window;
    m.body.event.window.len = (uint16_t)sizeof long_window;
    emit_frame("event_long_window_extremes", &m, false);

    header(&m, TGW_MSG_HEARTBEAT, 5);
    m.body.heartbeat.battery_mv = 2987;
    m.body.heartbeat.temperature_cdeg = -1234;
    m.body.heartbeat.inferences = 86400;
    m.body.heartbeat.events_dropped = 2;
    m.body.heartbeat.retx_floor = 4;
    m.body.heartbeat.rx_errors = 1;
    emit_frame("heartbeat", &m, false);
    m.body.heartbeat.battery_mv = 0;
    m.body.heartbeat.temperature_cdeg = TGW_TEMPERATURE_UNKNOWN;
    emit_frame("heartbeat_unmeasured_auth", &m, true);

    header(&m, TGW_MSG_INFO, 0);
    m.body.info.protocol_version = 1;
    m.body.info.capabilities = TGW_CAP_DOWNLINK | TGW_CAP_WINDOW | TGW_CAP_AUTH;
    m.body.info.heartbeat_period_s = 60;
    m.body.info.sample_rate_hz = 50;
    m.body.info.threshold = 49151;
    for (i = 0; i < TGW_MODEL_HASH_SIZE; i++) {
        m.body.info.model_sha256[i] = (uint8_t)(0xa0u + i);
    }
    m.body.info.firmware_version.ptr = "0.3.1+g1a2b3c";
    m.body.info.firmware_version.len = 13;
    m.body.info.model_name.ptr = "basicmotions-conv1d";
    m.body.info.model_name.len = 19;
    m.body.info.n_labels = 4;
    for (i = 0; i < 4u; i++) {
        m.body.info.labels[i].ptr = LABELS[i];
        m.body.info.labels[i].len = (uint8_t)strlen(LABELS[i]);
    }
    emit_frame("info", &m, false);
    emit_fragments("info_fragments_mtu23", &m, 23, 7);
    emit_fragments("info_fragments_mtu64", &m, 64, 8);

    header(&m, TGW_MSG_LOG, 3);
    m.body.log.level = TGW_LOG_ERROR;
    m.body.log.text.ptr = "imu: i2c timeout\n";
    m.body.log.text.len = 17;
    emit_frame("log", &m, false);

    header(&m, TGW_MSG_COMMAND, 1);
    m.header.uptime_ms = 0;
    m.body.command.request_id = 65535;
    m.body.command.command = TGW_CMD_SET_THRESHOLD;
    m.body.command.arg_len = 2;
    m.body.command.args = threshold;
    emit_frame("command_set_threshold", &m, false);
    emit_frame("command_set_threshold_auth", &m, true);
    m.body.command.command = TGW_CMD_PING;
    m.body.command.arg_len = 0;
    m.body.command.args = NULL;
    emit_frame("command_ping", &m, false);

    header(&m, TGW_MSG_COMMAND_ACK, 3);
    m.body.command_ack.request_id = 65535;
    m.body.command_ack.command = TGW_CMD_SET_THRESHOLD;
    m.body.command_ack.status = TGW_STATUS_BAD_ARGUMENT;
    m.body.command_ack.result_len = 4;
    m.body.command_ack.result = result;
    emit_frame("command_ack", &m, false);

    header(&m, TGW_MSG_ACK, 2);
    m.header.uptime_ms = 0;
    m.body.ack.boot_id = 12;
    m.body.ack.seq = 1000;
    emit_frame("ack", &m, false);

    memset(&a, 0, sizeof a);
    a.kind = TGW_MSG_EVENT;
    a.node_id = 0xa1b2c3d4e5f60718ull;
    a.boot_id = 12;
    a.seq = 77;
    a.label = 2;
    a.score = 40000;
    emit_advert("advert_event", &a, false);
    emit_advert("advert_event_auth", &a, true);
    a.kind = TGW_MSG_HEARTBEAT;
    a.battery_mv = 3011;
    a.temperature_c = -7;
    emit_advert("advert_heartbeat_auth", &a, true);
    printf("\n]\n");
    return 0;
}

/* ---- decode ------------------------------------------------------------- */

static void decode_frame_line(const uint8_t *key, size_t key_len, const uint8_t *raw, size_t n) {
    static uint8_t dbuf[TGW_MAX_FRAME_SIZE];
    tgw_deframer_t d;
    tgw_message_t m;
    const char *err = "no frame";
    size_t i;
    int found = 0;
    tgw_deframer_init(&d, dbuf, sizeof dbuf);
    for (i = 0; i < n && !found; i++) {
        tgw_deframe_result_t r = tgw_deframer_feed(&d, raw[i]);
        if (r == TGW_DEFRAME_ERROR) {
            err = d.error;
        } else if (r == TGW_DEFRAME_MESSAGE) {
            found = tgw_decode(d.message, d.message_len, &m, &err) ? 1 : -1;
        }
    }
    if (found != 1) {
        printf("{\"ok\":false,\"error\":\"%s\"}\n", err);
        return;
    }
    printf("{\"ok\":true,\"decoded\":");
    dump_message(&m);
    printf(",\"verified\":");
#if TGW_ENABLE_HMAC
    if (key != NULL) {
        printf("%s", tgw_verify(d.message, d.message_len, key, key_len) ? "true" : "false");
    } else
#endif
    {
        printf("null");
    }
    {
        uint8_t msg[TGW_MAX_MESSAGE_SIZE];
        size_t len;
        out_t o;
        o.len = 0;
        if (tgw_encode(&m, key, key_len, msg, sizeof msg, &len, &err) &&
            tgw_frame_write(msg, len, out_write, &o)) {
            printf(",\"reframed_hex\":");
            hex(o.buf, o.len);
        }
    }
    printf("}\n");
}

static void decode_advert_line(const uint8_t *key, size_t key_len, const uint8_t *raw, size_t n) {
    tgw_advert_t a;
    uint8_t buf[TGW_ADV_MAX_SIZE];
    size_t len;
    if (!tgw_advert_decode(raw, n, &a)) {
        printf("{\"ok\":false,\"error\":\"bad advertisement\"}\n");
        return;
    }
    printf("{\"ok\":true,\"decoded\":");
    dump_advert(&a);
    if (tgw_advert_encode(&a, key, key_len, buf, sizeof buf, &len)) {
        printf(",\"reencoded_hex\":");
        hex(buf, len);
    }
    printf("}\n");
}

static int decode(void) {
    static char line[8 * TGW_MAX_FRAME_SIZE];
    static uint8_t raw[4 * TGW_MAX_FRAME_SIZE];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *kind = strtok(line, " \n");
        char *key_hex = strtok(NULL, " \n");
        char *data_hex = strtok(NULL, " \n");
        uint8_t key[64];
        size_t key_len = 0;
        size_t n;
        if (kind == NULL || key_hex == NULL || data_hex == NULL) {
            printf("{\"ok\":false,\"error\":\"bad input line\"}\n");
            continue;
        }
        if (strcmp(key_hex, "-") != 0) {
            key_len = unhex(key_hex, key, sizeof key);
        }
        n = unhex(data_hex, raw, sizeof raw);
        if (n == (size_t)-1 || key_len == (size_t)-1) {
            printf("{\"ok\":false,\"error\":\"input too long\"}\n");
        } else if (strcmp(kind, "frame") == 0) {
            decode_frame_line(key_len ? key : NULL, key_len, raw, n);
        } else {
            decode_advert_line(key_len ? key : NULL, key_len, raw, n);
        }
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "gen") == 0) {
        return gen();
    }
    if (argc == 2 && strcmp(argv[1], "decode") == 0) {
        return decode();
    }
    fprintf(stderr, "usage: tgw_vectors gen|decode\n");
    return 2;
}
