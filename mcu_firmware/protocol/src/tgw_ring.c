/* Retransmit ring: EVENTs stay here until the gateway's cumulative ACK covers them. */
#include "tgw_internal.h"

void tgw_ring_init(tgw_ring_t *r, tgw_ring_slot_t *slots, uint8_t *data, uint16_t n_slots,
                   uint16_t slot_size) {
    memset(r, 0, sizeof *r);
    r->slots = slots;
    r->data = data;
    r->n_slots = n_slots;
    r->slot_size = slot_size;
}

static uint16_t slot_at(const tgw_ring_t *r, uint16_t i) {
    return (uint16_t)((r->head + i) % r->n_slots);
}

bool tgw_ring_push(tgw_ring_t *r, uint32_t seq, const uint8_t *msg, uint16_t len,
                   uint32_t now_ms) {
    uint16_t idx;
    if (len > r->slot_size || r->n_slots == 0u) {
        return false;
    }
    if (r->count == r->n_slots) {
        r->head = slot_at(r, 1);
        r->count--;
        r->dropped++;
    }
    idx = slot_at(r, r->count);
    r->slots[idx].seq = seq;
    r->slots[idx].sent_at_ms = now_ms;
    r->slots[idx].len = len;
    memcpy(r->data + (size_t)idx * r->slot_size, msg, len);
    r->count++;
    return true;
}

void tgw_ring_ack(tgw_ring_t *r, uint32_t ack_seq) {
    while (r->count > 0u && r->slots[r->head].seq <= ack_seq) {
        r->head = slot_at(r, 1);
        r->count--;
    }
}

uint32_t tgw_ring_floor(const tgw_ring_t *r, uint32_t next_seq) {
    return r->count > 0u ? r->slots[r->head].seq : next_seq;
}

bool tgw_ring_next_due(tgw_ring_t *r, uint32_t now_ms, uint32_t timeout_ms,
                       const uint8_t **msg, uint16_t *len) {
    uint16_t i;
    for (i = 0; i < r->count; i++) {
        uint16_t idx = slot_at(r, i);
        /* unsigned difference: correct across the 49-day uptime wrap */
        if ((uint32_t)(now_ms - r->slots[idx].sent_at_ms) >= timeout_ms) {
            r->slots[idx].sent_at_ms = now_ms;
            *msg = r->data + (size_t)idx * r->slot_size;
            *len = r->slots[idx].len;
            return true;
        }
    }
    return false;
}

void tgw_ring_resend_all(tgw_ring_t *r, uint32_t now_ms, uint32_t timeout_ms) {
    uint16_t i;
    for (i = 0; i < r->count; i++) {
        r->slots[slot_at(r, i)].sent_at_ms = now_ms - timeout_ms;
    }
}
