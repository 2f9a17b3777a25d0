/* Downlink: ACKs free the retransmit ring, COMMANDs are answered (section 4.5). */
#include "tgw_node_internal.h"

#include <string.h>

void tgw_node_rx_error(tgw_node_t *n) {
    if (n->stats.rx_errors < UINT16_MAX) {
        n->stats.rx_errors++;
    }
}

static uint32_t arg_le(const tgw_command_t *c) {
    uint32_t v = 0;
    uint8_t i;
    for (i = c->arg_len; i > 0u; i--) {
        v = (v << 8) | c->args[i - 1u];
    }
    return v;
}

/* Applies one command; returns its status. Settings are stored before they
 * are answered OK: an operator's change survives a reboot, and a change the
 * storage refused is not applied (FAILED). */
static uint8_t apply(tgw_node_t *n, const tgw_command_t *c, bool *send_info) {
    tgw_persist_t next = n->persist;
    uint32_t v = arg_le(c);
    uint32_t now;
    switch (c->command) {
    case TGW_CMD_PING:
    case TGW_CMD_GET_INFO:
    case TGW_CMD_REBOOT:
        if (c->arg_len != 0u) {
            return TGW_STATUS_BAD_ARGUMENT;
        }
        *send_info = c->command == TGW_CMD_GET_INFO;
        n->reboot_pending = c->command == TGW_CMD_REBOOT;
        return TGW_STATUS_OK;
    case TGW_CMD_SET_THRESHOLD:
        if (c->arg_len != 2u) {
            return TGW_STATUS_BAD_ARGUMENT;
        }
        next.threshold = (uint16_t)v;
        break;
    case TGW_CMD_SET_SAMPLE_RATE:
        if (c->arg_len != 4u || v == 0u || v > n->cfg.max_sample_rate_hz) {
            return TGW_STATUS_BAD_ARGUMENT;
        }
        if (n->hal.set_sample_rate != NULL && !n->hal.set_sample_rate(n->hal.ctx, v)) {
            return TGW_STATUS_FAILED;
        }
        next.sample_rate_hz = v;
        break;
    case TGW_CMD_SET_HEARTBEAT_PERIOD:
        if (c->arg_len != 2u || v == 0u) {
            return TGW_STATUS_BAD_ARGUMENT;
        }
        next.heartbeat_period_s = (uint16_t)v;
        break;
    default:
        return TGW_STATUS_UNKNOWN_COMMAND;
    }
    if (!tgw_node_save(n, &next)) {
        if (c->command == TGW_CMD_SET_SAMPLE_RATE && n->hal.set_sample_rate != NULL) {
            (void)n->hal.set_sample_rate(n->hal.ctx, n->persist.sample_rate_hz);
        }
        return TGW_STATUS_FAILED;
    }
    now = n->hal.millis(n->hal.ctx);
    n->cfg.decision.threshold = n->persist.threshold;
    if (c->command == TGW_CMD_SET_SAMPLE_RATE) {
        tgw_node_restart_sampling(n, now);
    } else if (c->command == TGW_CMD_SET_HEARTBEAT_PERIOD) {
        n->next_heartbeat_ms = now + 1000u * n->persist.heartbeat_period_s;
    }
    return TGW_STATUS_OK;
}

static void command(tgw_node_t *n, const tgw_command_t *c) {
    tgw_message_t m;
    bool send_info = false;
    uint8_t status = apply(n, c, &send_info);
    tgw_node_header(n, &m, TGW_MSG_COMMAND_ACK, n->seq);
    m.body.command_ack.request_id = c->request_id;
    m.body.command_ack.command = c->command;
    m.body.command_ack.status = status;
    (void)tgw_node_send(n, &m);
    if (send_info) {
        (void)tgw_node_send_info(n);
    }
}

void tgw_node_receive(tgw_node_t *n, const uint8_t *msg, size_t len) {
    tgw_message_t m;
    const char *error;
    bool keyed = n->cfg.key_len > 0u;
    if (n->stopped) {
        return;
    }
    if (!tgw_decode(msg, len, &m, &error) ||
        (m.header.type != TGW_MSG_ACK && m.header.type != TGW_MSG_COMMAND)) {
        tgw_node_rx_error(n);
        return;
    }
    if (m.header.node_id != n->cfg.node_id) {
        n->stats.rx_ignored++; /* another node's, on a shared line */
        return;
    }
#if TGW_ENABLE_HMAC
    if (keyed && ((m.header.flags & TGW_FLAG_AUTH) == 0u ||
                  !tgw_verify(msg, len, n->cfg.key, n->cfg.key_len))) {
        tgw_node_rx_error(n);
        return;
    }
#endif
    /* addressed to an earlier boot (sent before the gateway heard this one), or,
     * signed, a downlink seq already accepted: a replay */
    if (m.header.boot_id != n->persist.boot_id || (keyed && m.header.seq <= n->downlink_seq)) {
        n->stats.rx_ignored++;
        return;
    }
    if (keyed) {
        n->downlink_seq = m.header.seq;
    }
    if (m.header.type == TGW_MSG_ACK) {
        if (m.body.ack.boot_id == n->persist.boot_id) {
            tgw_ring_ack(&n->ring, m.body.ack.seq);
        }
        return;
    }
    command(n, &m.body.command);
}
