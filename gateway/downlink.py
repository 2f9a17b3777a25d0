"""Everything the gateway sends to a node goes through here: ACKs and commands alike.

One owner, per node, of what a downlink message needs: the transport link the
node was last heard on, the downlink counter (a keyed node refuses a message
whose ``seq`` is not above the last one it accepted, docs/protocol.md 7), the
boot the message is addressed to, and the encoding and signing with the node's
key. A counter value is reserved once and never handed out again, even when
the commit it was reserved for fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from gateway.protocol import Ack, Command, encode

if TYPE_CHECKING:
    from gateway.nodes import LiveNode

# A command's counter value is stored with the node's state at its next commit (its
# COMMAND_ACK makes one), so a crash can lose the last few. After a restart the counter
# goes on this far above the stored value: far more than can be in flight, and a small
# step of the 32-bit space.
RESTART_GAP: Final = 1024


def after_restart(stored: int) -> int:
    """The counter to go on from, given the value stored before a restart."""
    return stored + RESTART_GAP


def reserve(node: LiveNode) -> int:
    """The node's next downlink seq; stored with its state at the next commit."""
    node.state.downlink_seq += 1
    return node.state.downlink_seq


async def send(node: LiveNode, body: Ack | Command, seq: int) -> None:
    """Sends ``body`` with downlink ``seq`` (from :func:`reserve`) to the node's boot.

    Raises OSError when the node has no link (ConnectionError) or the link fails.
    """
    link = node.downlink
    if link is None:
        raise ConnectionError("the node has no downlink")
    await link(
        encode(
            body,
            node_id=node.node_id,
            boot_id=node.state.seq.boot_id,
            seq=seq,
            uptime_ms=0,
            key=node.key,
        )
    )
