/* The node's main loop: sampling, inference, events, heartbeats, resends. */
#include "tgw_node_internal.h"

#include <string.h>

/* Resends per poll: enough to drain a ring after a reconnect in a few polls,
 * few enough that sampling keeps its pace on a slow link. */
#define RESENDS_PER_POLL 4u
/* A loop that fell this many windows behind its sample clock skips ahead
 * rather than replaying the backlog at full speed. */
#define MAX_BACKLOG_WINDOWS 4u

static bool due(uint32_t now, uint32_t at) {
    return (int32_t)(now - at) >= 0; /* serial-number arithmetic: wraps cleanly */
}

static uint32_t earlier(uint32_t now, uint32_t a, uint32_t b) {
    return (int32_t)(a - now) <= (int32_t)(b - now) ? a : b;
}

void tgw_persist_seal(tgw_persist_t *p) {
    p->magic = TGW_PERSIST_MAGIC;
    p->check = tgw_crc32(0, (const uint8_t *)p, offsetof(tgw_persist_t, check));
}

bool tgw_persist_valid(const tgw_persist_t *p) {
    return p->magic == TGW_PERSIST_MAGIC &&
           p->check == tgw_crc32(0, (const uint8_t *)p, offsetof(tgw_persist_t, check));
}

bool tgw_node_save(tgw_node_t *n, const tgw_persist_t *next) {
    tgw_persist_t sealed = *next;
    tgw_persist_seal(&sealed);
    if (!n->hal.save(n->hal.ctx, &sealed)) {
        n->stats.storage_failures++;
        return false;
    }
    n->persist = sealed;
    return true;
}

static const uint8_t *node_key(const tgw_node_t *n) {
    return n->cfg.key_len > 0u ? n->cfg.key : NULL;
}

void tgw_node_header(tgw_node_t *n, tgw_message_t *m, uint8_t type, uint32_t seq) {
    memset(m, 0, sizeof *m);
    m->header.version = TGW_PROTOCOL_VERSION;
    m->header.type = type;
    m->header.node_id = n->cfg.node_id;
    m->header.boot_id = n->persist.boot_id;
    m->header.seq = seq;
    m->header.uptime_ms = n->hal.millis(n->hal.ctx);
}

static bool encode(tgw_node_t *n, const tgw_message_t *m, size_t *len) {
    const char *error;
    return tgw_encode(m, node_key(n), n->cfg.key_len, n->tx, sizeof n->tx, len, &error);
}

bool tgw_node_send(tgw_node_t *n, const tgw_message_t *m) {
    size_t len;
    if (!encode(n, m, &len)) {
        return false;
    }
    if (!n->hal.send(n->hal.ctx, n->tx, len)) {
        n->stats.send_failures++;
        return false;
    }
    return true;
}

static void fill_info(tgw_node_t *n, tgw_message_t *m) {
    const tgw_model_t *model = n->model;
    tgw_info_t *info = &m->body.info;
    uint8_t i;
    tgw_node_header(n, m, TGW_MSG_INFO, n->seq);
    info->protocol_version = TGW_PROTOCOL_VERSION;
    info->capabilities = (uint8_t)(TGW_CAP_DOWNLINK | TGW_CAP_WINDOW |
                                   (node_key(n) != NULL ? TGW_CAP_AUTH : 0u));
    info->heartbeat_period_s = n->persist.heartbeat_period_s;
    info->sample_rate_hz = n->persist.sample_rate_hz;
    info->threshold = n->persist.threshold;
    memcpy(info->model_sha256, model->sha256, TGW_MODEL_HASH_SIZE);
    info->firmware_version.ptr = n->cfg.firmware_version;
    info->firmware_version.len = (uint8_t)strlen(n->cfg.firmware_version);
    info->model_name.ptr = model->name;
    info->model_name.len = (uint8_t)strlen(model->name);
    info->n_labels = model->n_labels;
    for (i = 0; i < model->n_labels; i++) {
        info->labels[i].ptr = model->labels[i];
        info->labels[i].len = (uint8_t)strlen(model->labels[i]);
    }
}

bool tgw_node_encode_info(tgw_node_t *n, uint8_t *buf, size_t cap, size_t *len) {
    tgw_message_t m;
    const char *error;
    fill_info(n, &m);
    return tgw_encode(&m, node_key(n), n->cfg.key_len, buf, cap, len, &error);
}

bool tgw_node_send_info(tgw_node_t *n) {
    tgw_message_t m;
    fill_info(n, &m);
    return tgw_node_send(n, &m);
}

static bool send_heartbeat(tgw_node_t *n) {
    tgw_message_t m;
    tgw_heartbeat_t *hb = &m.body.heartbeat;
    tgw_node_header(n, &m, TGW_MSG_HEARTBEAT, n->seq);
    hb->battery_mv = n->hal.battery_mv != NULL ? n->hal.battery_mv(n->hal.ctx) : 0u;
    hb->temperature_cdeg = n->hal.temperature_cdeg != NULL
                               ? n->hal.temperature_cdeg(n->hal.ctx)
                               : (int16_t)TGW_TEMPERATURE_UNKNOWN;
    hb->inferences = n->stats.inferences;
    hb->events_dropped = n->ring.dropped;
    /* what an honest node reports: the oldest seq it can still resend */
    hb->retx_floor = tgw_ring_floor(&n->ring, n->seq + 1u);
    hb->rx_errors = n->stats.rx_errors;
    return tgw_node_send(n, &m);
}

bool tgw_node_log(tgw_node_t *n, uint8_t level, const char *text) {
    tgw_message_t m;
    size_t len = strlen(text);
    tgw_node_header(n, &m, TGW_MSG_LOG, n->seq);
    m.body.log.level = level;
    m.body.log.text.ptr = text;
    m.body.log.text.len = (uint8_t)(len > TGW_MAX_LOG_TEXT ? TGW_MAX_LOG_TEXT : len);
    return tgw_node_send(n, &m);
}

static void send_event(tgw_node_t *n, const uint16_t *scores, uint8_t label,
                       uint32_t inference_us) {
    tgw_message_t m;
    tgw_event_t *e = &m.body.event;
    const tgw_model_t *model = n->model;
    size_t len;
    if (n->seq == UINT32_MAX) {
        /* seq 0 is invalid and numbers must not repeat within a boot: a new
         * boot starts the count again */
        n->reboot_pending = true;
        return;
    }
    tgw_node_header(n, &m, TGW_MSG_EVENT, n->seq + 1u);
    e->model_id = model->model_id;
    e->label = label;
    e->score = scores[label];
    e->inference_us = inference_us;
    if (n->cfg.send_scores) {
        e->n_scores = model->n_labels;
        memcpy(e->scores, scores, sizeof scores[0] * model->n_labels);
    }
    if (n->cfg.attach_window) {
        e->window.rank = 2;
        e->window.dims[0] = model->window_samples;
        e->window.dims[1] = model->n_axes;
        e->window.scale = model->input_scale;
        e->window.zero_point = model->input_zero_point;
        e->window.data = n->window;
        e->window.len = (uint16_t)(model->window_samples * model->n_axes);
    }
    if (!encode(n, &m, &len)) {
        return; /* cannot happen with the compiled sizes; the seq stays unused */
    }
    n->seq++;
    n->stats.events++;
    /* into the ring first: what the link fails to send now is resent later */
    (void)tgw_ring_push(&n->ring, n->seq, n->tx, (uint16_t)len, m.header.uptime_ms);
    if (!n->hal.send(n->hal.ctx, n->tx, len)) {
        n->stats.send_failures++;
    }
}

static void run_window(tgw_node_t *n) {
    const tgw_model_t *model = n->model;
    uint16_t scores[TGW_MAX_SCORES];
    uint32_t t0 = n->hal.micros != NULL ? n->hal.micros(n->hal.ctx) : 0u;
    uint32_t us;
    uint8_t label;
    if (!model->invoke(model->ctx, n->window,
                       (size_t)model->window_samples * model->n_axes, scores)) {
        n->stats.inference_failures++;
        return;
    }
    us = n->hal.micros != NULL ? n->hal.micros(n->hal.ctx) - t0 : 0u;
    n->stats.inferences++;
    label = tgw_top_label(scores, model->n_labels);
    if (tgw_decide(&n->decision, &n->cfg.decision, label, scores[label],
                   n->hal.millis(n->hal.ctx))) {
        send_event(n, scores, label, us);
    }
}

void tgw_node_restart_sampling(tgw_node_t *n, uint32_t now) {
    n->sample_epoch_ms = now;
    n->samples_taken = 0;
}

static void take_samples(tgw_node_t *n, uint32_t now) {
    uint32_t rate = n->persist.sample_rate_hz;
    uint32_t due_count = (uint32_t)(((uint64_t)(now - n->sample_epoch_ms) * rate) / 1000u);
    uint32_t budget = n->cfg.hop_samples; /* at most one window per poll */
    float axes[TGW_NODE_MAX_AXES];
    if (due_count - n->samples_taken > MAX_BACKLOG_WINDOWS * n->sampler.window_samples) {
        n->stats.samples_skipped += due_count - n->samples_taken;
        tgw_node_restart_sampling(n, now);
        return;
    }
    while (n->samples_taken < due_count && budget-- > 0u) {
        n->samples_taken++;
        if (!n->hal.read_sample(n->hal.ctx, axes, n->model->n_axes)) {
            n->stats.sensor_faults++;
            continue;
        }
        tgw_sampler_push(&n->sampler, axes);
        if (tgw_sampler_window(&n->sampler, n->cfg.hop_samples, n->window)) {
            run_window(n);
        }
    }
    /* keep the arithmetic small: move the epoch on by whole seconds */
    while (n->samples_taken >= rate && rate > 0u) {
        n->sample_epoch_ms += 1000u;
        n->samples_taken -= rate;
    }
}

static void resend_due(tgw_node_t *n, uint32_t now) {
    unsigned i;
    for (i = 0; i < RESENDS_PER_POLL; i++) {
        const uint8_t *msg;
        uint16_t len;
        if (!tgw_ring_next_due(&n->ring, now, n->cfg.retx_timeout_ms, &msg, &len)) {
            return;
        }
        n->stats.retransmissions++;
        if (!n->hal.send(n->hal.ctx, msg, len)) {
            n->stats.send_failures++;
            return;
        }
    }
}

void tgw_node_poll(tgw_node_t *n) {
    uint32_t now;
    if (n->stopped) {
        return;
    }
    if (n->hal.watchdog_kick != NULL) {
        n->hal.watchdog_kick(n->hal.ctx);
    }
    if (n->reboot_pending) {
        n->hal.reboot(n->hal.ctx);
        n->stopped = true; /* only a host HAL returns */
        return;
    }
    now = n->hal.millis(n->hal.ctx);
    take_samples(n, now);
    resend_due(n, now);
    if (due(now, n->next_heartbeat_ms)) {
        (void)send_heartbeat(n);
        n->next_heartbeat_ms += 1000u * n->persist.heartbeat_period_s;
        if (due(now, n->next_heartbeat_ms)) {
            n->next_heartbeat_ms = now + 1000u * n->persist.heartbeat_period_s;
        }
    }
}

uint32_t tgw_node_next_deadline(const tgw_node_t *n) {
    uint32_t now = n->hal.millis(n->hal.ctx);
    uint32_t at = n->next_heartbeat_ms;
    uint32_t rate = n->persist.sample_rate_hz;
    uint16_t i;
    if (n->reboot_pending) {
        return now;
    }
    if (rate > 0u) {
        uint64_t next = ((uint64_t)(n->samples_taken + 1u) * 1000u + rate - 1u) / rate;
        at = earlier(now, at, n->sample_epoch_ms + (uint32_t)next);
    }
    for (i = 0; i < n->ring.count; i++) {
        const tgw_ring_slot_t *s = &n->ring.slots[(n->ring.head + i) % n->ring.n_slots];
        at = earlier(now, at, s->sent_at_ms + n->cfg.retx_timeout_ms);
    }
    return due(now, at) ? now : at;
}

void tgw_node_sleep(tgw_node_t *n) {
    if (n->hal.sleep_until != NULL && !n->stopped) {
        n->hal.sleep_until(n->hal.ctx, tgw_node_next_deadline(n));
    }
}

void tgw_node_link_up(tgw_node_t *n) {
    (void)tgw_node_send_info(n);
    tgw_ring_resend_all(&n->ring, n->hal.millis(n->hal.ctx), n->cfg.retx_timeout_ms);
}

static bool config_fits(const tgw_hal_t *hal, const tgw_model_t *model,
                        const tgw_node_config_t *cfg) {
    size_t window = (size_t)model->window_samples * model->n_axes;
    if (hal->millis == NULL || hal->read_sample == NULL || hal->send == NULL ||
        hal->load == NULL || hal->save == NULL || hal->reboot == NULL) {
        return false;
    }
    if (cfg->node_id == 0u || cfg->firmware_version == NULL ||
        strlen(cfg->firmware_version) > TGW_MAX_STRING || cfg->hop_samples == 0u ||
        cfg->default_sample_rate_hz == 0u || cfg->default_heartbeat_period_s == 0u ||
        cfg->max_sample_rate_hz < cfg->default_sample_rate_hz) {
        return false;
    }
    if (cfg->key_len > 0u && (!TGW_ENABLE_HMAC || cfg->key == NULL || cfg->key_len < 16u ||
                              cfg->key_len > 64u)) {
        return false;
    }
    if (model->n_labels == 0u || model->n_labels > TGW_MAX_SCORES || model->labels == NULL ||
        window == 0u || window > TGW_NODE_MAX_WINDOW || strlen(model->name) > TGW_MAX_STRING) {
        return false;
    }
    return true;
}

bool tgw_node_start(tgw_node_t *n, const tgw_hal_t *hal, const tgw_model_t *model,
                    const tgw_node_config_t *cfg) {
    tgw_persist_t p;
    uint32_t now;
    memset(n, 0, sizeof *n);
    if (!config_fits(hal, model, cfg)) {
        return false;
    }
    n->hal = *hal;
    n->model = model;
    n->cfg = *cfg;
    if (!tgw_sampler_init(&n->sampler, model->window_samples, model->n_axes,
                          model->input_scale, model->input_zero_point)) {
        return false;
    }
    tgw_ring_init(&n->ring, n->ring_slots, n->ring_mem, TGW_NODE_RING_SLOTS,
                  TGW_NODE_SLOT_SIZE);
    if (!n->hal.load(n->hal.ctx, &p) || !tgw_persist_valid(&p)) {
        /* first boot or erased storage: the defaults, and boot 1 below */
        memset(&p, 0, sizeof p);
        p.threshold = cfg->decision.threshold;
    }
    if (p.sample_rate_hz == 0u || p.sample_rate_hz > cfg->max_sample_rate_hz) {
        p.sample_rate_hz = cfg->default_sample_rate_hz;
    }
    if (p.heartbeat_period_s == 0u) {
        p.heartbeat_period_s = cfg->default_heartbeat_period_s;
    }
    if (p.boot_id == UINT32_MAX) {
        return false; /* a boot id must never repeat: this node needs a new one */
    }
    p.boot_id++;
    /* saved before anything is sent: a reset right after must not reuse it */
    if (!tgw_node_save(n, &p)) {
        return false;
    }
    n->cfg.decision.threshold = n->persist.threshold;
    if (n->hal.set_sample_rate != NULL &&
        !n->hal.set_sample_rate(n->hal.ctx, n->persist.sample_rate_hz)) {
        n->persist.sample_rate_hz = cfg->default_sample_rate_hz;
    }
    tgw_decision_reset(&n->decision);
    now = n->hal.millis(n->hal.ctx);
    tgw_node_restart_sampling(n, now);
    n->next_heartbeat_ms = now + 1000u * n->persist.heartbeat_period_s;
    (void)tgw_node_send_info(n);
    (void)send_heartbeat(n);
    return true;
}
