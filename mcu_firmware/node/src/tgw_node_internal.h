/* What the core's translation units share; not part of the node's API. */
#ifndef TGW_NODE_INTERNAL_H
#define TGW_NODE_INTERNAL_H

#include "tgw_node.h"

/* A message of the given type with this boot's header, stamped now. */
void tgw_node_header(tgw_node_t *n, tgw_message_t *m, uint8_t type, uint32_t seq);
/* Encodes (signed when the node has a key) and sends; not kept for resending. */
bool tgw_node_send(tgw_node_t *n, const tgw_message_t *m);
bool tgw_node_send_info(tgw_node_t *n);
/* Seals and stores next; n->persist changes only when the storage took it. */
bool tgw_node_save(tgw_node_t *n, const tgw_persist_t *next);
/* Sample pacing starts again from now (new rate, or fell behind). */
void tgw_node_restart_sampling(tgw_node_t *n, uint32_t now);

#endif
