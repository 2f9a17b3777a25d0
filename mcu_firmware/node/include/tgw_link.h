/*
 * Link adapters: how whole protocol messages cross a serial line or a BLE
 * GATT connection (docs/protocol.md sections 5 and 6.2). Portable: the board
 * supplies the byte writer (UART) or the notifier (BLE stack) and feeds what
 * it receives; the adapter frames, deframes and reassembles.
 */
#ifndef TGW_LINK_H
#define TGW_LINK_H

#include "tgw_node.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Downlink frames are small (TGW_NODE_RX_MAX); a longer one is refused as
 * too long and counted, without ever buffering more than this. */
#define TGW_NODE_RX_FRAME (TGW_COBS_MAX(TGW_NODE_RX_MAX + TGW_CRC_SIZE) + 2u)

typedef struct {
    tgw_write_fn write; /* raw bytes to the UART / USB CDC */
    void *write_state;
    tgw_deframer_t deframer;
    uint8_t rx_buf[TGW_NODE_RX_FRAME];
} tgw_serial_link_t;

void tgw_serial_link_init(tgw_serial_link_t *l, tgw_write_fn write, void *write_state);
/* One frame: 0x00 COBS(message || CRC-32) 0x00. */
bool tgw_serial_link_send(tgw_serial_link_t *l, const uint8_t *msg, size_t len);
/* Bytes from the UART: every whole frame goes to tgw_node_receive, every bad
 * one to tgw_node_rx_error. */
void tgw_serial_link_feed(tgw_serial_link_t *l, tgw_node_t *n, const uint8_t *bytes,
                          size_t len);

typedef bool (*tgw_notify_fn)(void *state, const uint8_t *fragment, size_t len);

typedef struct {
    tgw_notify_fn notify; /* one notification on the event characteristic */
    void *notify_state;
    uint16_t att_mtu;     /* negotiated; TGW_BLE_MIN_ATT_MTU until then */
    uint8_t tag;          /* message tag of the last message sent */
    tgw_reassembler_t reasm;
    uint8_t rx_buf[TGW_NODE_RX_MAX];
} tgw_ble_link_t;

void tgw_ble_link_init(tgw_ble_link_t *l, tgw_notify_fn notify, void *notify_state);
void tgw_ble_link_set_mtu(tgw_ble_link_t *l, uint16_t att_mtu);
/* Cuts the message into fragments of att_mtu - 5 bytes and notifies each;
 * false at the first notification that fails (the message is incomplete: an
 * EVENT stays in the ring, the gateway drops the partial message). */
bool tgw_ble_link_send(tgw_ble_link_t *l, const uint8_t *msg, size_t len);
/* One write to the command characteristic (a fragment). */
void tgw_ble_link_write(tgw_ble_link_t *l, tgw_node_t *n, const uint8_t *fragment, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TGW_LINK_H */
