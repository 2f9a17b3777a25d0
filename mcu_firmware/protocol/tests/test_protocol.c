/* Host unit tests for the protocol library. Prints "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgw_protocol.h"

static int passed;
static int failed;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            printf("  FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            ok = 0;                                                                       \
        }                                                                                 \
    } while (0)

#define RUN(fn)                                                                           \
    do {                                                                                  \
        int before = failed;                                                              \
        fn(&failed);                                                                      \
        if (failed == before) {                                                           \
            passed++;                                                                     \
            printf("ok   %s\n", #fn);                                                     \
        } else {                                                                          \
            printf("FAIL %s\n", #fn);                                                     \
        }                                                                                 \
    } while (0)

#define TEST(name) static void name(int *fails)
#define END_TEST                                                                          \
    if (!ok) {                                                                            \
        (*fails)++;                                                                       \
    }

/* ---- helpers ---------------------------------------------------------- */

typedef struct {
    uint8_t buf[4 * TGW_MAX_FRAME_SIZE];
    size_t len;
    size_t fail_after; /* accept this many bytes, then fail */
} sink_t;

static bool sink_write(void *state, const uint8_t *data, size_t len) {
    sink_t *s = (sink_t *)state;
    size_t i;
    for (i = 0; i < len; i++) {
        if (s->len >= s->fail_after || s->len >= sizeof s->buf) {
            return false;
        }
        s->buf[s->len++] = data[i];
    }
    return true;
}

static const int8_t window_data[12] = {-128, -5, 0, 5, 127, 1, 2, 3, 4, 5, 6, 7};
static const char *labels[3] = {"idle", "normal", "anomaly"};

static void make_header(tgw_message_t *m, uint8_t type) {
    memset(m, 0, sizeof *m);
    m->header.type = type;
    m->header.node_id = 0x0123456789abcdefull;
    m->header.boot_id = 7;
    m->header.seq = 42;
    m->header.uptime_ms = 123456;
}

static void make_event(tgw_message_t *m, bool with_window) {
    make_header(m, TGW_MSG_EVENT);
    m->body.event.model_id = 0xdeadbeefu;
    m->body.event.label = 2;
    m->body.event.score = 60000;
    m->body.event.inference_us = 1850;
    m->body.event.n_scores = 3;
    m->body.event.scores[0] = 1000;
    m->body.event.scores[1] = 4535;
    m->body.event.scores[2] = 60000;
    if (with_window) {
        m->body.event.window.rank = 2;
        m->body.event.window.dims[0] = 3;
        m->body.event.window.dims[1] = 4;
        m->body.event.window.scale = 0.0078125f;
        m->body.event.window.zero_point = -3;
        m->body.event.window.data = window_data;
        m->body.event.window.len = 12;
    }
}

static void make_info(tgw_message_t *m) {
    int i;
    make_header(m, TGW_MSG_INFO);
    m->body.info.protocol_version = 1;
    m->body.info.capabilities = TGW_CAP_DOWNLINK | TGW_CAP_WINDOW;
    m->body.info.heartbeat_period_s = 30;
    m->body.info.sample_rate_hz = 100;
    m->body.info.threshold = 45000;
    for (i = 0; i < TGW_MODEL_HASH_SIZE; i++) {
        m->body.info.model_sha256[i] = (uint8_t)i;
    }
    m->body.info.firmware_version.ptr = "1.2.3";
    m->body.info.firmware_version.len = 5;
    m->body.info.model_name.ptr = "motion-v1";
    m->body.info.model_name.len = 9;
    m->body.info.n_labels = 3;
    for (i = 0; i < 3; i++) {
        m->body.info.labels[i].ptr = labels[i];
        m->body.info.labels[i].len = (uint8_t)strlen(labels[i]);
    }
}

static bool encode_frame(const tgw_message_t *m, const uint8_t *key, size_t key_len,
                         sink_t *out) {
    uint8_t msg[TGW_MAX_MESSAGE_SIZE];
    size_t len;
    const char *err = NULL;
    if (!tgw_encode(m, key, key_len, msg, sizeof msg, &len, &err)) {
        return false;
    }
    return tgw_frame_write(msg, len, sink_write, out);
}

#if TGW_ENABLE_GATEWAY_SIDE
static int feed_all(tgw_deframer_t *d, const uint8_t *data, size_t len, tgw_message_t *last) {
    size_t i;
    int found = 0;
    const char *err;
    for (i = 0; i < len; i++) {
        if (tgw_deframer_feed(d, data[i]) == TGW_DEFRAME_MESSAGE) {
            if (tgw_decode(d->message, d->message_len, last, &err)) {
                found++;
            }
        }
    }
    return found;
}
#endif

/* ---- tests ------------------------------------------------------------ */

TEST(crc32_check_value) {
    int ok = 1;
    CHECK(tgw_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u);
    END_TEST
}

#if TGW_ENABLE_HMAC
static bool hex_eq(const uint8_t *got, const char *hex) {
    size_t i;
    char b[3] = {0, 0, 0};
    for (i = 0; i < 32u; i++) {
        b[0] = hex[2 * i];
        b[1] = hex[2 * i + 1];
        if (got[i] != (uint8_t)strtoul(b, NULL, 16)) {
            return false;
        }
    }
    return true;
}

TEST(hmac_rfc4231) {
    int ok = 1;
    uint8_t key[131];
    uint8_t mac[32];
    const char *big = "Test Using Larger Than Block-Size Key - Hash Key First";
    memset(key, 0x0b, 20);
    tgw_hmac_sha256(key, 20, (const uint8_t *)"Hi There", 8, mac);
    CHECK(hex_eq(mac, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
    tgw_hmac_sha256((const uint8_t *)"Jefe", 4, (const uint8_t *)"what do ya want for nothing?",
                    28, mac);
    CHECK(hex_eq(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    memset(key, 0xaa, sizeof key);
    tgw_hmac_sha256(key, sizeof key, (const uint8_t *)big, strlen(big), mac);
    CHECK(hex_eq(mac, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
    END_TEST
}

#if TGW_ENABLE_GATEWAY_SIDE
TEST(auth_tag_verifies_and_detects_tampering) {
    int ok = 1;
    static const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    tgw_message_t m;
    tgw_message_t d;
    uint8_t msg[TGW_MAX_MESSAGE_SIZE];
    size_t len;
    size_t i;
    const char *err = NULL;
    make_event(&m, false);
    CHECK(tgw_encode(&m, key, sizeof key, msg, sizeof msg, &len, &err));
    CHECK(tgw_decode(msg, len, &d, &err));
    CHECK((d.header.flags & TGW_FLAG_AUTH) != 0u);
    CHECK(d.body.event.score == 60000);
    CHECK(tgw_verify(msg, len, key, sizeof key));
    for (i = 0; i < len; i++) {
        msg[i] ^= 0x40u;
        CHECK(!tgw_verify(msg, len, key, sizeof key));
        msg[i] ^= 0x40u;
    }
    CHECK(!tgw_verify(msg, len, key, sizeof key - 1));
    END_TEST
}
#endif
#endif

#if TGW_ENABLE_GATEWAY_SIDE
TEST(every_type_round_trips_through_a_frame) {
    int ok = 1;
    static const uint8_t args[2] = {0x10, 0x27};
    static const uint8_t result[3] = {1, 2, 3};
    tgw_message_t m[8];
    tgw_message_t d;
    tgw_deframer_t de;
    uint8_t dbuf[TGW_MAX_FRAME_SIZE];
    int i;
    make_event(&m[0], false);
    make_event(&m[1], true);
    make_header(&m[2], TGW_MSG_HEARTBEAT);
    m[2].body.heartbeat.battery_mv = 2950;
    m[2].body.heartbeat.temperature_cdeg = -1250;
    m[2].body.heartbeat.inferences = 100000;
    m[2].body.heartbeat.events_dropped = 3;
    m[2].body.heartbeat.retx_floor = 40;
    m[2].body.heartbeat.rx_errors = 2;
    make_info(&m[3]);
    make_header(&m[4], TGW_MSG_LOG);
    m[4].body.log.level = TGW_LOG_WARNING;
    m[4].body.log.text.ptr = "accelerometer saturated";
    m[4].body.log.text.len = 23;
    make_header(&m[5], TGW_MSG_COMMAND);
    m[5].body.command.request_id = 513;
    m[5].body.command.command = TGW_CMD_SET_HEARTBEAT_PERIOD;
    m[5].body.command.arg_len = 2;
    m[5].body.command.args = args;
    make_header(&m[6], TGW_MSG_COMMAND_ACK);
    m[6].body.command_ack.request_id = 513;
    m[6].body.command_ack.command = TGW_CMD_PING;
    m[6].body.command_ack.status = TGW_STATUS_BUSY;
    m[6].body.command_ack.result_len = 3;
    m[6].body.command_ack.result = result;
    make_header(&m[7], TGW_MSG_ACK);
    m[7].body.ack.boot_id = 7;
    m[7].body.ack.seq = 41;
    for (i = 0; i < 8; i++) {
        sink_t s;
        memset(&s, 0, sizeof s);
        s.fail_after = sizeof s.buf;
        CHECK(encode_frame(&m[i], NULL, 0, &s));
        tgw_deframer_init(&de, dbuf, sizeof dbuf);
        CHECK(feed_all(&de, s.buf, s.len, &d) == 1);
        CHECK(d.header.version == TGW_PROTOCOL_VERSION && d.header.flags == 0u);
        CHECK(d.header.type == m[i].header.type && d.header.node_id == m[i].header.node_id);
        CHECK(d.header.boot_id == m[i].header.boot_id && d.header.seq == m[i].header.seq);
        CHECK(d.header.uptime_ms == m[i].header.uptime_ms);
    }
    /* spot checks of bodies decoded from the last frames */
    {
        sink_t s;
        memset(&s, 0, sizeof s);
        s.fail_after = sizeof s.buf;
        CHECK(encode_frame(&m[1], NULL, 0, &s));
        tgw_deframer_init(&de, dbuf, sizeof dbuf);
        CHECK(feed_all(&de, s.buf, s.len, &d) == 1);
        CHECK(d.body.event.window.rank == 2 && d.body.event.window.len == 12);
        CHECK(memcmp(d.body.event.window.data, window_data, 12) == 0);
        CHECK(d.body.event.window.scale == 0.0078125f && d.body.event.window.zero_point == -3);
        CHECK(d.body.event.n_scores == 3 && d.body.event.scores[1] == 4535);
    }
    {
        sink_t s;
        memset(&s, 0, sizeof s);
        s.fail_after = sizeof s.buf;
        CHECK(encode_frame(&m[3], NULL, 0, &s));
        tgw_deframer_init(&de, dbuf, sizeof dbuf);
        CHECK(feed_all(&de, s.buf, s.len, &d) == 1);
        CHECK(d.body.info.n_labels == 3 && d.body.info.labels[2].len == 7);
        CHECK(memcmp(d.body.info.labels[2].ptr, "anomaly", 7) == 0);
        CHECK(d.body.info.model_sha256[31] == 31 && d.body.info.sample_rate_hz == 100);
    }
    END_TEST
}
#endif

TEST(write_that_fails_after_each_byte) {
    int ok = 1;
    tgw_message_t m;
    sink_t full;
    size_t k;
    make_event(&m, true);
    memset(&full, 0, sizeof full);
    full.fail_after = sizeof full.buf;
    CHECK(encode_frame(&m, NULL, 0, &full));
    for (k = 0; k < full.len; k++) {
        sink_t s;
        memset(&s, 0, sizeof s);
        s.fail_after = k;
        CHECK(!encode_frame(&m, NULL, 0, &s));
        CHECK(s.len == k);
    }
    END_TEST
}

#if TGW_ENABLE_GATEWAY_SIDE
TEST(byte_at_a_time_and_glued_frames_with_garbage) {
    int ok = 1;
    tgw_message_t m;
    tgw_message_t d;
    tgw_deframer_t de;
    uint8_t dbuf[TGW_MAX_FRAME_SIZE];
    sink_t s;
    static const uint8_t garbage[7] = {0x13, 0x37, 0xff, 0x01, 0x02, 0x99, 0x42};
    int i;
    memset(&s, 0, sizeof s);
    s.fail_after = sizeof s.buf;
    CHECK(sink_write(&s, garbage, sizeof garbage));
    for (i = 0; i < 20; i++) {
        make_event(&m, (i % 2) == 0);
        m.header.seq = (uint32_t)i;
        CHECK(encode_frame(&m, NULL, 0, &s));
    }
    CHECK(sink_write(&s, garbage, sizeof garbage));
    tgw_deframer_init(&de, dbuf, sizeof dbuf);
    CHECK(feed_all(&de, s.buf, s.len, &d) == 20);
    CHECK(d.header.seq == 19);
    CHECK(de.frames_ok == 20);
    CHECK(de.frames_bad == 1); /* the leading garbage, ended by the first delimiter */
    END_TEST
}
#endif

#if TGW_ENABLE_GATEWAY_SIDE
TEST(truncated_and_corrupt_frames_are_dropped_then_resync) {
    int ok = 1;
    tgw_message_t m;
    tgw_message_t d;
    tgw_deframer_t de;
    uint8_t dbuf[TGW_MAX_FRAME_SIZE];
    sink_t one;
    size_t cut;
    memset(&one, 0, sizeof one);
    one.fail_after = sizeof one.buf;
    make_event(&m, true);
    CHECK(encode_frame(&m, NULL, 0, &one));
    for (cut = 2; cut + 1 < one.len; cut++) {
        tgw_deframer_init(&de, dbuf, sizeof dbuf);
        /* a frame cut short, then a delimiter, then a whole frame */
        CHECK(feed_all(&de, one.buf, cut, &d) == 0);
        CHECK(feed_all(&de, (const uint8_t *)"\0", 1, &d) == 0);
        CHECK(de.frames_bad == 1);
        CHECK(feed_all(&de, one.buf, one.len, &d) == 1);
    }
    /* a flipped bit: CRC catches it */
    tgw_deframer_init(&de, dbuf, sizeof dbuf);
    one.buf[10] ^= 0x04u;
    CHECK(feed_all(&de, one.buf, one.len, &d) == 0);
    CHECK(de.frames_bad == 1);
    END_TEST
}
#endif

#if TGW_ENABLE_GATEWAY_SIDE
TEST(oversized_input_is_skipped_to_the_next_delimiter) {
    int ok = 1;
    tgw_message_t m;
    tgw_message_t d;
    tgw_deframer_t de;
    uint8_t dbuf[TGW_MAX_FRAME_SIZE];
    sink_t one;
    int i;
    memset(&one, 0, sizeof one);
    one.fail_after = sizeof one.buf;
    make_event(&m, false);
    CHECK(encode_frame(&m, NULL, 0, &one));
    tgw_deframer_init(&de, dbuf, sizeof dbuf);
    for (i = 0; i < 5000; i++) {
        CHECK(tgw_deframer_feed(&de, 0x55) == TGW_DEFRAME_NONE);
    }
    CHECK(tgw_deframer_feed(&de, 0x00) == TGW_DEFRAME_ERROR);
    CHECK(strcmp(de.error, "frame too long") == 0);
    CHECK(feed_all(&de, one.buf, one.len, &d) == 1);
    END_TEST
}
#endif

#if TGW_ENABLE_GATEWAY_SIDE
TEST(decoder_rejects_every_truncation_and_bad_fields) {
    int ok = 1;
    tgw_message_t m;
    tgw_message_t d;
    uint8_t msg[TGW_MAX_MESSAGE_SIZE];
    size_t len;
    size_t cut;
    const char *err = NULL;
    make_info(&m);
    CHECK(tgw_encode(&m, NULL, 0, msg, sizeof msg, &len, &err));
    for (cut = 0; cut < len; cut++) {
        CHECK(!tgw_decode(msg, cut, &d, &err));
    }
    CHECK(tgw_decode(msg, len, &d, &err));
    msg[0] = 2;
    CHECK(!tgw_decode(msg, len, &d, &err));
    CHECK(strcmp(err, "unsupported protocol version") == 0);
    msg[0] = 1;
    msg[1] = 0x7e;
    CHECK(!tgw_decode(msg, len, &d, &err));
    CHECK(strcmp(err, "unknown message type") == 0);
    /* a window whose dims claim more than the message holds */
    make_event(&m, true);
    CHECK(tgw_encode(&m, NULL, 0, msg, sizeof msg, &len, &err));
    msg[TGW_HEADER_SIZE + 12 + 6 + 1] = 0xff;
    CHECK(!tgw_decode(msg, len, &d, &err));
    /* encoder refuses a buffer too small, at every size */
    make_event(&m, true);
    CHECK(tgw_encode(&m, NULL, 0, msg, sizeof msg, &len, &err));
    for (cut = 0; cut < len; cut++) {
        size_t l2;
        CHECK(!tgw_encode(&m, NULL, 0, msg, cut, &l2, &err));
    }
    END_TEST
}
#endif

TEST(ring_resends_until_acknowledged) {
    int ok = 1;
    tgw_ring_slot_t slots[4];
    uint8_t data[4 * 64];
    tgw_ring_t r;
    const uint8_t *msg;
    uint16_t len;
    uint8_t payload[8] = {0};
    uint32_t seq;
    tgw_ring_init(&r, slots, data, 4, 64);
    CHECK(tgw_ring_floor(&r, 1) == 1);
    for (seq = 1; seq <= 3; seq++) {
        payload[0] = (uint8_t)seq;
        CHECK(tgw_ring_push(&r, seq, payload, sizeof payload, 0));
    }
    CHECK(!tgw_ring_next_due(&r, 100, 500, &msg, &len)); /* not yet timed out */
    CHECK(tgw_ring_next_due(&r, 600, 500, &msg, &len) && msg[0] == 1 && len == 8);
    CHECK(tgw_ring_next_due(&r, 600, 500, &msg, &len) && msg[0] == 2);
    CHECK(tgw_ring_next_due(&r, 600, 500, &msg, &len) && msg[0] == 3);
    CHECK(!tgw_ring_next_due(&r, 600, 500, &msg, &len));
    tgw_ring_ack(&r, 2); /* the gateway stored 1 and 2; 3 went missing */
    CHECK(r.count == 1 && tgw_ring_floor(&r, 4) == 3);
    CHECK(!tgw_ring_next_due(&r, 700, 500, &msg, &len));
    CHECK(tgw_ring_next_due(&r, 1100, 500, &msg, &len) && msg[0] == 3);
    for (seq = 4; seq <= 8; seq++) { /* overflow: 3 and 4 are lost */
        payload[0] = (uint8_t)seq;
        CHECK(tgw_ring_push(&r, seq, payload, sizeof payload, 1200));
    }
    CHECK(r.dropped == 2 && r.count == 4 && tgw_ring_floor(&r, 9) == 5);
    tgw_ring_resend_all(&r, 1201, 500);
    CHECK(tgw_ring_next_due(&r, 1201, 500, &msg, &len) && msg[0] == 5);
    tgw_ring_ack(&r, 8);
    CHECK(r.count == 0 && tgw_ring_floor(&r, 9) == 9);
    CHECK(!tgw_ring_push(&r, 9, data, 65, 0)); /* larger than a slot */
    /* the uptime wrap does not stall resends */
    CHECK(tgw_ring_push(&r, 9, payload, 8, 0xFFFFFF00u));
    CHECK(tgw_ring_next_due(&r, 0x00000200u, 500, &msg, &len));
    END_TEST
}

TEST(fragments_reassemble_at_every_mtu) {
    int ok = 1;
    tgw_message_t m;
    uint8_t msg[TGW_MAX_MESSAGE_SIZE];
    uint8_t frag[TGW_BLE_MAX_ATT_MTU];
    uint8_t rbuf[TGW_MAX_MESSAGE_SIZE];
    tgw_reassembler_t r;
    size_t len;
    size_t flen;
    uint16_t mtu;
    const char *err = NULL;
    make_info(&m);
    CHECK(tgw_encode(&m, NULL, 0, msg, sizeof msg, &len, &err));
    tgw_reassembler_init(&r, rbuf, sizeof rbuf);
    for (mtu = TGW_BLE_MIN_ATT_MTU; mtu <= TGW_BLE_MAX_ATT_MTU; mtu++) {
        uint8_t n = tgw_fragment_count(len, mtu);
        uint8_t i;
        CHECK(n >= 1);
        for (i = 0; i < n; i++) {
            tgw_reasm_result_t res;
            CHECK(tgw_fragment(msg, len, (uint8_t)mtu, i, mtu, frag, &flen));
            CHECK(flen <= (size_t)mtu - 3u);
            res = tgw_reassembler_push(&r, frag, flen);
            CHECK(res == (i + 1u == n ? TGW_REASM_MESSAGE : TGW_REASM_NONE));
        }
        CHECK(r.len == len && memcmp(rbuf, msg, len) == 0);
    }
    /* a lost middle fragment is reported, and the next message still works */
    CHECK(tgw_fragment(msg, len, 9, 0, 23, frag, &flen));
    CHECK(tgw_reassembler_push(&r, frag, flen) == TGW_REASM_NONE);
    CHECK(tgw_fragment(msg, len, 9, 2, 23, frag, &flen));
    CHECK(tgw_reassembler_push(&r, frag, flen) == TGW_REASM_ERROR);
    CHECK(tgw_fragment(msg, 18, 10, 0, 23, frag, &flen));
    CHECK(tgw_reassembler_push(&r, frag, flen) == TGW_REASM_MESSAGE);
    CHECK(tgw_fragment_count(TGW_MAX_MESSAGE_SIZE + 1u, 247) == 0);
    CHECK(tgw_fragment_count(10, 20) == 0);
    END_TEST
}

#if TGW_ENABLE_GATEWAY_SIDE
TEST(advertisement_round_trips) {
    int ok = 1;
    tgw_advert_t a;
    tgw_advert_t b;
    uint8_t buf[TGW_ADV_MAX_SIZE];
    size_t len;
    memset(&a, 0, sizeof a);
    a.kind = TGW_MSG_EVENT;
    a.node_id = 0xfeedfacecafebeefull;
    a.boot_id = 3;
    a.seq = 99;
    a.label = 1;
    a.score = 50000;
    CHECK(tgw_advert_encode(&a, NULL, 0, buf, sizeof buf, &len) && len == TGW_ADV_SIZE_EVENT);
    CHECK(tgw_advert_decode(buf, len, &b) && b.seq == 99 && b.score == 50000 && !b.auth);
    CHECK(!tgw_advert_decode(buf, len - 1u, &b));
    a.kind = TGW_MSG_HEARTBEAT;
    a.battery_mv = 3000;
    a.temperature_c = -20;
#if TGW_ENABLE_HMAC
    CHECK(tgw_advert_encode(&a, (const uint8_t *)"k", 1, buf, sizeof buf, &len));
    CHECK(len == TGW_ADV_SIZE_HEARTBEAT + TGW_ADV_TAG_SIZE && len <= TGW_ADV_MAX_SIZE);
    CHECK(tgw_advert_decode(buf, len, &b) && b.auth && b.temperature_c == -20);
#endif
    CHECK(!tgw_advert_encode(&a, NULL, 0, buf, 10, &len));
    END_TEST
}
#endif

/* Golden bytes from tests/vectors/c_vectors.json: what every node must decode. */
TEST(node_decodes_downlink_golden_bytes) {
    int ok = 1;
    static const uint8_t command[] = {0x01, 0x81, 0x00, 0x18, 0x07, 0xf6, 0xe5, 0xd4, 0xc3, 0xb2,
                                      0xa1, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x00, 0xff, 0xff, 0x03, 0x02, 0x50, 0xc3};
    static const uint8_t ack[] = {0x01, 0x82, 0x00, 0x18, 0x07, 0xf6, 0xe5, 0xd4, 0xc3, 0xb2, 0xa1,
                                  0x0c, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x0c, 0x00, 0x00, 0x00, 0xe8, 0x03, 0x00, 0x00};
    tgw_message_t m;
    const char *err = NULL;
    CHECK(tgw_decode(command, sizeof command, &m, &err));
    CHECK(m.header.type == TGW_MSG_COMMAND && m.header.node_id == 0xa1b2c3d4e5f60718ull);
    CHECK(m.header.boot_id == 12 && m.header.seq == 1);
    CHECK(m.body.command.request_id == 65535 && m.body.command.command == TGW_CMD_SET_THRESHOLD);
    CHECK(m.body.command.arg_len == 2 && m.body.command.args[0] == 0x50);
    CHECK(!tgw_decode(command, sizeof command - 1u, &m, &err));
    CHECK(tgw_decode(ack, sizeof ack, &m, &err));
    CHECK(m.header.type == TGW_MSG_ACK && m.body.ack.boot_id == 12 && m.body.ack.seq == 1000);
    END_TEST
}

int main(void) {
    RUN(crc32_check_value);
#if TGW_ENABLE_HMAC
    RUN(hmac_rfc4231);
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(auth_tag_verifies_and_detects_tampering);
#endif
#endif
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(every_type_round_trips_through_a_frame);
#endif
    RUN(write_that_fails_after_each_byte);
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(byte_at_a_time_and_glued_frames_with_garbage);
#endif
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(truncated_and_corrupt_frames_are_dropped_then_resync);
#endif
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(oversized_input_is_skipped_to_the_next_delimiter);
#endif
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(decoder_rejects_every_truncation_and_bad_fields);
#endif
    RUN(node_decodes_downlink_golden_bytes);
    RUN(ring_resends_until_acknowledged);
    RUN(fragments_reassemble_at_every_mtu);
#if TGW_ENABLE_GATEWAY_SIDE
    RUN(advertisement_round_trips);
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
