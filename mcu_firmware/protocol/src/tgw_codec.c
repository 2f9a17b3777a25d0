/* Message encoder and decoder (docs/protocol.md, "Messages"). */
#include "tgw_internal.h"

static const tgw_field_t HEADER_FIELDS[] = {
    TGW_FIELD(tgw_header_t, type),    TGW_FIELD(tgw_header_t, flags),  TGW_FIELD(tgw_header_t, node_id),
    TGW_FIELD(tgw_header_t, boot_id), TGW_FIELD(tgw_header_t, seq),    TGW_FIELD(tgw_header_t, uptime_ms)};
static const tgw_field_t EVENT_FIELDS[] = {
    TGW_FIELD(tgw_event_t, model_id), TGW_FIELD(tgw_event_t, label), TGW_FIELD(tgw_event_t, score),
    TGW_FIELD(tgw_event_t, inference_us), TGW_FIELD(tgw_event_t, n_scores)};
static const tgw_field_t HEARTBEAT_FIELDS[] = {
    TGW_FIELD(tgw_heartbeat_t, battery_mv),     TGW_FIELD(tgw_heartbeat_t, temperature_cdeg),
    TGW_FIELD(tgw_heartbeat_t, inferences),     TGW_FIELD(tgw_heartbeat_t, events_dropped),
    TGW_FIELD(tgw_heartbeat_t, retx_floor),     TGW_FIELD(tgw_heartbeat_t, rx_errors)};
static const tgw_field_t INFO_FIELDS[] = {
    TGW_FIELD(tgw_info_t, protocol_version), TGW_FIELD(tgw_info_t, capabilities),
    TGW_FIELD(tgw_info_t, heartbeat_period_s), TGW_FIELD(tgw_info_t, sample_rate_hz),
    TGW_FIELD(tgw_info_t, threshold), TGW_FIELD(tgw_info_t, model_sha256)};
static const tgw_field_t COMMAND_FIELDS[] = {
    TGW_FIELD(tgw_command_t, request_id), TGW_FIELD(tgw_command_t, command),
    TGW_FIELD(tgw_command_t, arg_len)};
static const tgw_field_t COMMAND_ACK_FIELDS[] = {
    TGW_FIELD(tgw_command_ack_t, request_id), TGW_FIELD(tgw_command_ack_t, command),
    TGW_FIELD(tgw_command_ack_t, status), TGW_FIELD(tgw_command_ack_t, result_len)};
static const tgw_field_t ACK_FIELDS[] = {TGW_FIELD(tgw_ack_t, boot_id), TGW_FIELD(tgw_ack_t, seq)};

static void put_str(tgw_out_t *o, tgw_str_t s, uint8_t max) {
    if (s.len > max || (s.len > 0u && s.ptr == NULL)) {
        o->ok = false;
        return;
    }
    tgw_put_u8(o, s.len);
    tgw_put(o, s.ptr, s.len);
}

static uint32_t window_count(const tgw_window_t *w) {
    uint32_t n = 1;
    uint8_t i;
    for (i = 0; i < w->rank; i++) {
        n *= w->dims[i];
        if (n > TGW_MAX_MESSAGE_SIZE) {
            return UINT32_MAX;
        }
    }
    return n;
}

static bool encode_event(tgw_out_t *o, const tgw_event_t *e) {
    uint8_t i;
    uint32_t bits;
    if (e->n_scores > TGW_MAX_SCORES || e->window.rank > TGW_MAX_WINDOW_RANK) {
        return false;
    }
    tgw_put_fields(o, e, EVENT_FIELDS, TGW_COUNT(EVENT_FIELDS));
    for (i = 0; i < e->n_scores; i++) {
        tgw_put_le(o, e->scores[i], 2);
    }
    tgw_put_u8(o, e->window.rank);
    if (e->window.rank == 0u) {
        return true;
    }
    if (window_count(&e->window) != e->window.len || e->window.data == NULL) {
        return false;
    }
    for (i = 0; i < e->window.rank; i++) {
        tgw_put_le(o, e->window.dims[i], 2);
    }
    memcpy(&bits, &e->window.scale, sizeof bits);
    tgw_put_le(o, bits, 4);
    tgw_put_u8(o, (uint8_t)e->window.zero_point);
    tgw_put(o, e->window.data, e->window.len);
    return true;
}

#if TGW_ENABLE_GATEWAY_SIDE
static bool get_str(tgw_in_t *in, tgw_str_t *s, uint8_t max) {
    uint8_t n = (uint8_t)tgw_get_le(in, 1);
    const uint8_t *p;
    if (n > max) {
        in->ok = false;
        return false;
    }
    p = tgw_take(in, n);
    s->ptr = (const char *)p;
    s->len = p != NULL ? n : 0u;
    return p != NULL;
}

static bool decode_event(tgw_in_t *in, tgw_event_t *e) {
    uint8_t i;
    uint32_t bits;
    uint32_t count;
    tgw_get_fields(in, e, EVENT_FIELDS, TGW_COUNT(EVENT_FIELDS));
    if (e->n_scores > TGW_MAX_SCORES) {
        return false;
    }
    for (i = 0; i < e->n_scores; i++) {
        e->scores[i] = (uint16_t)tgw_get_le(in, 2);
    }
    memset(&e->window, 0, sizeof e->window);
    e->window.rank = (uint8_t)tgw_get_le(in, 1);
    if (e->window.rank == 0u) {
        return in->ok;
    }
    if (e->window.rank > TGW_MAX_WINDOW_RANK) {
        return false;
    }
    for (i = 0; i < e->window.rank; i++) {
        e->window.dims[i] = (uint16_t)tgw_get_le(in, 2);
    }
    bits = (uint32_t)tgw_get_le(in, 4);
    memcpy(&e->window.scale, &bits, sizeof bits);
    e->window.zero_point = (int8_t)(uint8_t)tgw_get_le(in, 1);
    count = window_count(&e->window);
    if (count == UINT32_MAX) {
        return false;
    }
    e->window.len = (uint16_t)count;
    e->window.data = (const int8_t *)tgw_take(in, count);
    return e->window.data != NULL || count == 0u;
}
#endif

static bool encode_body(tgw_out_t *o, const tgw_message_t *m) {
    const tgw_info_t *info;
    uint8_t i;
    switch (m->header.type) {
    case TGW_MSG_EVENT:
        return encode_event(o, &m->body.event);
    case TGW_MSG_HEARTBEAT:
        tgw_put_fields(o, &m->body.heartbeat, HEARTBEAT_FIELDS, TGW_COUNT(HEARTBEAT_FIELDS));
        return true;
    case TGW_MSG_INFO:
        info = &m->body.info;
        if (info->n_labels > TGW_MAX_LABELS) {
            return false;
        }
        tgw_put_fields(o, info, INFO_FIELDS, TGW_COUNT(INFO_FIELDS));
        put_str(o, info->firmware_version, TGW_MAX_STRING);
        put_str(o, info->model_name, TGW_MAX_STRING);
        tgw_put_u8(o, info->n_labels);
        for (i = 0; i < info->n_labels; i++) {
            put_str(o, info->labels[i], TGW_MAX_STRING);
        }
        return true;
    case TGW_MSG_LOG:
        tgw_put_u8(o, m->body.log.level);
        put_str(o, m->body.log.text, TGW_MAX_LOG_TEXT);
        return true;
    case TGW_MSG_COMMAND_ACK:
        if (m->body.command_ack.result_len > TGW_MAX_COMMAND_RESULT) {
            return false;
        }
        tgw_put_fields(o, &m->body.command_ack, COMMAND_ACK_FIELDS, TGW_COUNT(COMMAND_ACK_FIELDS));
        tgw_put(o, m->body.command_ack.result, m->body.command_ack.result_len);
        return true;
#if TGW_ENABLE_GATEWAY_SIDE
    case TGW_MSG_COMMAND:
        if (m->body.command.arg_len > TGW_MAX_COMMAND_ARGS) {
            return false;
        }
        tgw_put_fields(o, &m->body.command, COMMAND_FIELDS, TGW_COUNT(COMMAND_FIELDS));
        tgw_put(o, m->body.command.args, m->body.command.arg_len);
        return true;
    case TGW_MSG_ACK:
        tgw_put_fields(o, &m->body.ack, ACK_FIELDS, TGW_COUNT(ACK_FIELDS));
        return true;
#endif
    default:
        return false;
    }
}

static bool decode_body(tgw_in_t *in, uint8_t type, tgw_message_t *m) {
#if TGW_ENABLE_GATEWAY_SIDE
    tgw_info_t *info;
    uint8_t i;
#endif
    switch (type) {
#if TGW_ENABLE_GATEWAY_SIDE
    case TGW_MSG_EVENT:
        return decode_event(in, &m->body.event);
    case TGW_MSG_HEARTBEAT:
        tgw_get_fields(in, &m->body.heartbeat, HEARTBEAT_FIELDS, TGW_COUNT(HEARTBEAT_FIELDS));
        return in->ok;
    case TGW_MSG_INFO:
        info = &m->body.info;
        tgw_get_fields(in, info, INFO_FIELDS, TGW_COUNT(INFO_FIELDS));
        if (!in->ok || !get_str(in, &info->firmware_version, TGW_MAX_STRING) ||
            !get_str(in, &info->model_name, TGW_MAX_STRING)) {
            return false;
        }
        info->n_labels = (uint8_t)tgw_get_le(in, 1);
        if (info->n_labels > TGW_MAX_LABELS) {
            return false;
        }
        for (i = 0; i < info->n_labels; i++) {
            if (!get_str(in, &info->labels[i], TGW_MAX_STRING)) {
                return false;
            }
        }
        return in->ok;
    case TGW_MSG_LOG:
        m->body.log.level = (uint8_t)tgw_get_le(in, 1);
        return get_str(in, &m->body.log.text, TGW_MAX_LOG_TEXT);
    case TGW_MSG_COMMAND_ACK:
        tgw_get_fields(in, &m->body.command_ack, COMMAND_ACK_FIELDS, TGW_COUNT(COMMAND_ACK_FIELDS));
        if (m->body.command_ack.result_len > TGW_MAX_COMMAND_RESULT) {
            return false;
        }
        m->body.command_ack.result = tgw_take(in, m->body.command_ack.result_len);
        return in->ok;
#endif
    case TGW_MSG_COMMAND:
        tgw_get_fields(in, &m->body.command, COMMAND_FIELDS, TGW_COUNT(COMMAND_FIELDS));
        if (m->body.command.arg_len > TGW_MAX_COMMAND_ARGS) {
            return false;
        }
        m->body.command.args = tgw_take(in, m->body.command.arg_len);
        return in->ok;
    case TGW_MSG_ACK:
        tgw_get_fields(in, &m->body.ack, ACK_FIELDS, TGW_COUNT(ACK_FIELDS));
        return in->ok;
    default:
        return false;
    }
}

bool tgw_encode(const tgw_message_t *msg, const uint8_t *key, size_t key_len,
                uint8_t *buf, size_t cap, size_t *out_len, const char **error) {
    tgw_out_t o;
    tgw_header_t header;
    uint8_t flags = (uint8_t)(msg->header.flags & ~TGW_FLAG_AUTH);
    o.buf = buf;
    o.cap = cap < TGW_MAX_MESSAGE_SIZE ? cap : TGW_MAX_MESSAGE_SIZE;
    o.len = 0;
    o.ok = true;
#if !TGW_ENABLE_HMAC
    if (key != NULL) {
        *error = "HMAC support is compiled out";
        return false;
    }
#endif
    if (key != NULL) {
        flags |= TGW_FLAG_AUTH;
    }
    header = msg->header;
    header.flags = flags;
    tgw_put_u8(&o, TGW_PROTOCOL_VERSION);
    tgw_put_fields(&o, &header, HEADER_FIELDS, TGW_COUNT(HEADER_FIELDS));
    if (!encode_body(&o, msg)) {
        *error = "field out of range or unknown message type";
        return false;
    }
#if TGW_ENABLE_HMAC
    if (key != NULL && o.ok) {
        uint8_t mac[32];
        tgw_hmac_sha256(key, key_len, buf, o.len, mac);
        tgw_put(&o, mac, TGW_AUTH_TAG_SIZE);
    }
#else
    (void)key_len;
#endif
    if (!o.ok) {
        *error = "buffer too small";
        return false;
    }
    *out_len = o.len;
    return true;
}

bool tgw_decode(const uint8_t *buf, size_t len, tgw_message_t *msg, const char **error) {
    tgw_in_t in;
    tgw_header_t *h = &msg->header;
    size_t body_len = len;
    if (len < TGW_HEADER_SIZE) {
        *error = "message shorter than a header";
        return false;
    }
    if (len > TGW_MAX_MESSAGE_SIZE) {
        *error = "message too long";
        return false;
    }
    h->version = buf[0];
    h->type = buf[1];
    h->flags = buf[2];
    if (h->version != TGW_PROTOCOL_VERSION) {
        *error = "unsupported protocol version";
        return false;
    }
    if ((h->flags & TGW_FLAG_AUTH) != 0u) {
        if (len < TGW_HEADER_SIZE + TGW_AUTH_TAG_SIZE) {
            *error = "message shorter than its tag";
            return false;
        }
        body_len = len - TGW_AUTH_TAG_SIZE;
        memcpy(msg->tag, buf + body_len, TGW_AUTH_TAG_SIZE);
    }
    in.buf = buf;
    in.len = body_len;
    in.pos = 1;
    in.ok = true;
    tgw_get_fields(&in, h, HEADER_FIELDS, TGW_COUNT(HEADER_FIELDS));
    if ((h->type < TGW_MSG_EVENT || h->type > TGW_MSG_COMMAND_ACK) && h->type != TGW_MSG_COMMAND &&
        h->type != TGW_MSG_ACK) {
        *error = "unknown message type";
        return false;
    }
    if (!decode_body(&in, h->type, msg) || !in.ok) {
        *error = "truncated or invalid payload";
        return false;
    }
    return true;
}

#if TGW_ENABLE_HMAC
bool tgw_verify(const uint8_t *buf, size_t len, const uint8_t *key, size_t key_len) {
    uint8_t mac[32];
    uint8_t diff = 0;
    size_t i;
    if (len < TGW_HEADER_SIZE + TGW_AUTH_TAG_SIZE || (buf[2] & TGW_FLAG_AUTH) == 0u) {
        return false;
    }
    tgw_hmac_sha256(key, key_len, buf, len - TGW_AUTH_TAG_SIZE, mac);
    /* constant time: the comparison must not leak how many bytes matched */
    for (i = 0; i < TGW_AUTH_TAG_SIZE; i++) {
        diff |= (uint8_t)(mac[i] ^ buf[len - TGW_AUTH_TAG_SIZE + i]);
    }
    return diff == 0u;
}
#endif
