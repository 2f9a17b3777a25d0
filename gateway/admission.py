"""Which messages enter the pipeline at all: the admission and authentication stage.

A message is let in when its node is admitted by the node policy (configured,
or unknown and accepted under the cap), carries a valid HMAC tag when the node
has a key, and travels in the uplink direction. Values the decoder replaced
(docs/protocol.md 4.8) are let in, counted and logged.
"""

from __future__ import annotations

from gateway.logs import BadInput
from gateway.model import Inbound, node_hex
from gateway.nodes import LiveNode, NodeRegistry
from gateway.protocol import MsgType, verify, verify_advert

_DOWNLINK_ONLY = frozenset({MsgType.COMMAND, MsgType.ACK})


class Admission:
    def __init__(self, registry: NodeRegistry, bad_input: BadInput) -> None:
        self._registry = registry
        self._bad = bad_input

    def admit(self, item: Inbound) -> LiveNode | None:
        """The message's node, or None when the message is refused (counted and logged)."""
        msg = item.message
        h = msg.header
        node = self._registry.admit(h.node_id, item.port)
        if node is None:
            self._bad(
                "rejected_unknown_node",
                f"unknown:{item.port}",
                'refused messages from unknown node %s on %s: [nodes] unknown = "reject" '
                '(or max_nodes reached); add a [nodes."%s"] table to accept it',
                node_hex(h.node_id),
                item.port,
                node_hex(h.node_id),
            )
            return None
        key = node.key
        if key is not None and not (
            verify_advert(item.advert, key) if item.advert is not None else verify(msg, key)
        ):
            self._bad(
                "rejected_unauthenticated",
                f"auth:{h.node_id}",
                "refused a message from node %s on %s: missing or wrong HMAC tag for its key",
                node_hex(h.node_id),
                item.port,
            )
            return None
        if h.type in _DOWNLINK_ONLY:
            self._bad(
                "rejected_wrong_direction",
                f"direction:{item.port}",
                "refused a %s from node %s on %s: it travels gateway -> node only",
                h.type.name,
                node_hex(h.node_id),
                item.port,
            )
            return None
        if msg.sanitised:
            # stored as sent; every reader decodes it with the same replacements
            self._bad(
                "values_sanitised",
                f"sanitised:{h.node_id}",
                "node %s on %s sent a %s with values the protocol rules out: %s",
                node_hex(h.node_id),
                item.port,
                h.type.name,
                "; ".join(msg.sanitised),
                count=len(msg.sanitised),
            )
        return node
