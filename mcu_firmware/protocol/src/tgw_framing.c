/* Serial framing: 0x00 COBS(message || CRC-32 LE) 0x00 (docs/protocol.md, "Serial"). */
#include "tgw_internal.h"

/* CRC-32/ISO-HDLC (the zlib/Ethernet CRC), bitwise: no 1 KB table on the node. */
uint32_t tgw_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    size_t i;
    int bit;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc ^= data[i];
        for (bit = 0; bit < 8; bit++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

typedef struct {
    const uint8_t *msg;
    size_t len;
    uint8_t crc[TGW_CRC_SIZE];
} frame_src_t;

static uint8_t src_at(const frame_src_t *s, size_t i) {
    return i < s->len ? s->msg[i] : s->crc[i - s->len];
}

/* Writes src[from, from+n): at most two pieces, the message and the CRC. */
static bool write_span(const frame_src_t *s, size_t from, size_t n, tgw_write_fn write,
                       void *state) {
    size_t in_msg = 0;
    if (from < s->len) {
        in_msg = s->len - from < n ? s->len - from : n;
        if (in_msg > 0u && !write(state, s->msg + from, in_msg)) {
            return false;
        }
    }
    if (n > in_msg) {
        size_t crc_from = from + in_msg - s->len;
        return write(state, s->crc + crc_from, n - in_msg);
    }
    return true;
}

bool tgw_frame_write(const uint8_t *msg, size_t len, tgw_write_fn write, void *state) {
    static const uint8_t delimiter = 0x00;
    frame_src_t s;
    size_t total;
    size_t pos = 0;
    if (len > TGW_MAX_MESSAGE_SIZE) {
        return false;
    }
    s.msg = msg;
    s.len = len;
    tgw_store_le(s.crc, tgw_crc32(0, msg, len), TGW_CRC_SIZE);
    total = len + TGW_CRC_SIZE;
    if (!write(state, &delimiter, 1)) {
        return false;
    }
    for (;;) {
        size_t run = 0;
        uint8_t code;
        while (pos + run < total && run < 254u && src_at(&s, pos + run) != 0u) {
            run++;
        }
        code = (uint8_t)(run + 1u);
        if (!write(state, &code, 1) || !write_span(&s, pos, run, write, state)) {
            return false;
        }
        pos += run;
        if (run == 254u) {
            continue; /* a full block implies no zero */
        }
        if (pos == total) {
            break;
        }
        pos++; /* the zero this block stands for */
    }
    return write(state, &delimiter, 1);
}

void tgw_deframer_init(tgw_deframer_t *d, uint8_t *buf, size_t cap) {
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->cap = cap < TGW_MAX_FRAME_SIZE - 2u ? cap : TGW_MAX_FRAME_SIZE - 2u;
}

/* Decodes COBS in place; the output never overtakes the input. */
static bool cobs_decode_in_place(uint8_t *buf, size_t len, size_t *out_len) {
    size_t in = 0;
    size_t out = 0;
    while (in < len) {
        uint8_t code = buf[in++];
        size_t n = (size_t)code - 1u;
        if (code == 0u || n > len - in) {
            return false;
        }
        memmove(buf + out, buf + in, n);
        in += n;
        out += n;
        if (code != 0xFFu && in < len) {
            buf[out++] = 0;
        }
    }
    *out_len = out;
    return true;
}

static tgw_deframe_result_t bad(tgw_deframer_t *d, const char *why) {
    d->error = why;
    d->frames_bad++;
    d->len = 0;
    return TGW_DEFRAME_ERROR;
}

tgw_deframe_result_t tgw_deframer_feed(tgw_deframer_t *d, uint8_t byte) {
    size_t n;
    uint32_t crc;
    if (byte != 0u) {
        if (d->discarding) {
            return TGW_DEFRAME_NONE;
        }
        if (d->len == d->cap) {
            d->discarding = true;
            return TGW_DEFRAME_NONE;
        }
        d->buf[d->len++] = byte;
        return TGW_DEFRAME_NONE;
    }
    if (d->discarding) {
        d->discarding = false;
        return bad(d, "frame too long");
    }
    if (d->len == 0u) {
        return TGW_DEFRAME_NONE; /* idle delimiter between frames */
    }
    if (!cobs_decode_in_place(d->buf, d->len, &n)) {
        return bad(d, "bad COBS encoding");
    }
    if (n < TGW_HEADER_SIZE + TGW_CRC_SIZE) {
        return bad(d, "frame too short");
    }
    crc = (uint32_t)tgw_load_le(d->buf + n - TGW_CRC_SIZE, TGW_CRC_SIZE);
    if (crc != tgw_crc32(0, d->buf, n - TGW_CRC_SIZE)) {
        return bad(d, "CRC mismatch");
    }
    d->len = 0;
    d->message = d->buf;
    d->message_len = n - TGW_CRC_SIZE;
    d->frames_ok++;
    return TGW_DEFRAME_MESSAGE;
}
