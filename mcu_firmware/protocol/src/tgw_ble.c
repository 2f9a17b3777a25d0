/* BLE fragmentation and the compact advertisement (docs/protocol.md, "BLE"). */
#include "tgw_internal.h"

static size_t fragment_payload(uint16_t att_mtu) {
    return att_mtu < TGW_BLE_MIN_ATT_MTU ? 0u : (size_t)att_mtu - 3u - TGW_FRAGMENT_HEADER_SIZE;
}

uint8_t tgw_fragment_count(size_t len, uint16_t att_mtu) {
    size_t per = fragment_payload(att_mtu);
    size_t n;
    if (per == 0u || len == 0u || len > TGW_MAX_MESSAGE_SIZE) {
        return 0;
    }
    n = (len + per - 1u) / per;
    return n > TGW_MAX_FRAGMENTS ? 0u : (uint8_t)n;
}

bool tgw_fragment(const uint8_t *msg, size_t len, uint8_t msg_tag, uint8_t index,
                  uint16_t att_mtu, uint8_t *out, size_t *out_len) {
    size_t per = fragment_payload(att_mtu);
    uint8_t count = tgw_fragment_count(len, att_mtu);
    size_t from;
    size_t n;
    if (count == 0u || index >= count) {
        return false;
    }
    from = (size_t)index * per;
    n = len - from < per ? len - from : per;
    out[0] = msg_tag;
    out[1] = (uint8_t)(index | (index + 1u == count ? TGW_FRAGMENT_LAST : 0u));
    memcpy(out + TGW_FRAGMENT_HEADER_SIZE, msg + from, n);
    *out_len = n + TGW_FRAGMENT_HEADER_SIZE;
    return true;
}

void tgw_reassembler_init(tgw_reassembler_t *r, uint8_t *buf, size_t cap) {
    memset(r, 0, sizeof *r);
    r->buf = buf;
    r->cap = cap < TGW_MAX_MESSAGE_SIZE ? cap : TGW_MAX_MESSAGE_SIZE;
}

static tgw_reasm_result_t reasm_error(tgw_reassembler_t *r, const char *why) {
    r->error = why;
    r->next_index = 0;
    r->len = 0;
    return TGW_REASM_ERROR;
}

tgw_reasm_result_t tgw_reassembler_push(tgw_reassembler_t *r, const uint8_t *frag, size_t len) {
    uint8_t index;
    size_t n;
    if (len <= TGW_FRAGMENT_HEADER_SIZE) {
        return reasm_error(r, "empty fragment");
    }
    index = (uint8_t)(frag[1] & ~TGW_FRAGMENT_LAST);
    if (index == 0u) {
        /* A new message: whatever was in progress is abandoned. */
        r->len = 0;
        r->tag = frag[0];
    } else if (r->next_index != index || r->tag != frag[0]) {
        return reasm_error(r, "fragment out of order");
    }
    n = len - TGW_FRAGMENT_HEADER_SIZE;
    if (n > r->cap - r->len) {
        return reasm_error(r, "message too long");
    }
    memcpy(r->buf + r->len, frag + TGW_FRAGMENT_HEADER_SIZE, n);
    r->len += n;
    if ((frag[1] & TGW_FRAGMENT_LAST) != 0u) {
        r->next_index = 0;
        return TGW_REASM_MESSAGE;
    }
    if (index + 1u >= TGW_MAX_FRAGMENTS) {
        return reasm_error(r, "too many fragments");
    }
    r->next_index = (uint8_t)(index + 1u);
    return TGW_REASM_NONE;
}

static const tgw_field_t ADV_KEY_FIELDS[] = {TGW_FIELD(tgw_advert_t, node_id),
                                             TGW_FIELD(tgw_advert_t, boot_id),
                                             TGW_FIELD(tgw_advert_t, seq)};
static const tgw_field_t ADV_EVENT_FIELDS[] = {TGW_FIELD(tgw_advert_t, label),
                                               TGW_FIELD(tgw_advert_t, score)};
static const tgw_field_t ADV_HEARTBEAT_FIELDS[] = {TGW_FIELD(tgw_advert_t, battery_mv),
                                                   TGW_FIELD(tgw_advert_t, temperature_c)};

bool tgw_advert_encode(const tgw_advert_t *adv, const uint8_t *key, size_t key_len,
                       uint8_t *out, size_t cap, size_t *out_len) {
    tgw_out_t o;
    o.buf = out;
    o.cap = cap;
    o.len = 0;
    o.ok = true;
    if (adv->kind != TGW_MSG_EVENT && adv->kind != TGW_MSG_HEARTBEAT) {
        return false;
    }
#if !TGW_ENABLE_HMAC
    if (key != NULL) {
        return false;
    }
#endif
    tgw_put_u8(&o, (uint8_t)((TGW_PROTOCOL_VERSION << 4) | (key != NULL ? TGW_ADV_FLAG_AUTH : 0u) |
                             adv->kind));
    tgw_put_fields(&o, adv, ADV_KEY_FIELDS, TGW_COUNT(ADV_KEY_FIELDS));
    if (adv->kind == TGW_MSG_EVENT) {
        tgw_put_fields(&o, adv, ADV_EVENT_FIELDS, TGW_COUNT(ADV_EVENT_FIELDS));
    } else {
        tgw_put_fields(&o, adv, ADV_HEARTBEAT_FIELDS, TGW_COUNT(ADV_HEARTBEAT_FIELDS));
    }
#if TGW_ENABLE_HMAC
    if (key != NULL && o.ok) {
        uint8_t mac[32];
        tgw_hmac_sha256(key, key_len, out, o.len, mac);
        tgw_put(&o, mac, TGW_ADV_TAG_SIZE);
    }
#else
    (void)key_len;
#endif
    *out_len = o.len;
    return o.ok;
}

#if TGW_ENABLE_GATEWAY_SIDE
bool tgw_advert_decode(const uint8_t *buf, size_t len, tgw_advert_t *adv) {
    tgw_in_t in;
    size_t want;
    if (len < 1u || (buf[0] >> 4) != TGW_PROTOCOL_VERSION) {
        return false;
    }
    adv->kind = (uint8_t)(buf[0] & 0x07u);
    adv->auth = (buf[0] & TGW_ADV_FLAG_AUTH) != 0u;
    if (adv->kind != TGW_MSG_EVENT && adv->kind != TGW_MSG_HEARTBEAT) {
        return false;
    }
    want = (adv->kind == TGW_MSG_EVENT ? TGW_ADV_SIZE_EVENT : TGW_ADV_SIZE_HEARTBEAT) +
           (adv->auth ? TGW_ADV_TAG_SIZE : 0u);
    if (len != want) {
        return false;
    }
    in.buf = buf;
    in.len = len;
    in.pos = 1;
    in.ok = true;
    tgw_get_fields(&in, adv, ADV_KEY_FIELDS, TGW_COUNT(ADV_KEY_FIELDS));
    if (adv->kind == TGW_MSG_EVENT) {
        tgw_get_fields(&in, adv, ADV_EVENT_FIELDS, TGW_COUNT(ADV_EVENT_FIELDS));
    } else {
        tgw_get_fields(&in, adv, ADV_HEARTBEAT_FIELDS, TGW_COUNT(ADV_HEARTBEAT_FIELDS));
    }
    if (adv->auth) {
        memcpy(adv->tag, buf + want - TGW_ADV_TAG_SIZE, TGW_ADV_TAG_SIZE);
    }
    return true;
}
#endif
