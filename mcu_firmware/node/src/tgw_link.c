/* Serial and BLE link adapters around the protocol library's framing. */
#include "tgw_link.h"

#include <string.h>

void tgw_serial_link_init(tgw_serial_link_t *l, tgw_write_fn write, void *write_state) {
    memset(l, 0, sizeof *l);
    l->write = write;
    l->write_state = write_state;
    tgw_deframer_init(&l->deframer, l->rx_buf, sizeof l->rx_buf);
}

bool tgw_serial_link_send(tgw_serial_link_t *l, const uint8_t *msg, size_t len) {
    return tgw_frame_write(msg, len, l->write, l->write_state);
}

void tgw_serial_link_feed(tgw_serial_link_t *l, tgw_node_t *n, const uint8_t *bytes,
                          size_t len) {
    size_t i;
    for (i = 0; i < len; i++) {
        switch (tgw_deframer_feed(&l->deframer, bytes[i])) {
        case TGW_DEFRAME_MESSAGE:
            tgw_node_receive(n, l->deframer.message, l->deframer.message_len);
            break;
        case TGW_DEFRAME_ERROR:
            tgw_node_rx_error(n);
            break;
        case TGW_DEFRAME_NONE:
        default:
            break;
        }
    }
}

void tgw_ble_link_init(tgw_ble_link_t *l, tgw_notify_fn notify, void *notify_state) {
    memset(l, 0, sizeof *l);
    l->notify = notify;
    l->notify_state = notify_state;
    l->att_mtu = TGW_BLE_MIN_ATT_MTU;
    tgw_reassembler_init(&l->reasm, l->rx_buf, sizeof l->rx_buf);
}

void tgw_ble_link_set_mtu(tgw_ble_link_t *l, uint16_t att_mtu) {
    if (att_mtu < TGW_BLE_MIN_ATT_MTU) {
        att_mtu = TGW_BLE_MIN_ATT_MTU;
    } else if (att_mtu > TGW_BLE_MAX_ATT_MTU) {
        att_mtu = TGW_BLE_MAX_ATT_MTU;
    }
    l->att_mtu = att_mtu;
}

bool tgw_ble_link_send(tgw_ble_link_t *l, const uint8_t *msg, size_t len) {
    uint8_t frag[TGW_BLE_MAX_ATT_MTU - 3u];
    uint8_t count = tgw_fragment_count(len, l->att_mtu);
    uint8_t i;
    if (count == 0u) {
        return false;
    }
    l->tag++;
    for (i = 0; i < count; i++) {
        size_t flen;
        if (!tgw_fragment(msg, len, l->tag, i, l->att_mtu, frag, &flen) ||
            !l->notify(l->notify_state, frag, flen)) {
            return false;
        }
    }
    return true;
}

void tgw_ble_link_write(tgw_ble_link_t *l, tgw_node_t *n, const uint8_t *fragment, size_t len) {
    switch (tgw_reassembler_push(&l->reasm, fragment, len)) {
    case TGW_REASM_MESSAGE:
        tgw_node_receive(n, l->reasm.buf, l->reasm.len);
        break;
    case TGW_REASM_ERROR:
        tgw_node_rx_error(n);
        break;
    case TGW_REASM_NONE:
    default:
        break;
    }
}
