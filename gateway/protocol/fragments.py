"""BLE fragmentation: a 2-byte header (message tag, index | LAST) per notification."""

from __future__ import annotations

from gateway.protocol.constants import (
    BLE_MIN_ATT_MTU,
    FRAGMENT_HEADER_SIZE,
    FRAGMENT_LAST,
    MAX_FRAGMENTS,
    MAX_MESSAGE_SIZE,
)
from gateway.protocol.errors import ProtocolError, Reason


def fragment_payload(att_mtu: int) -> int:
    """Message bytes per notification at ``att_mtu`` (ATT takes 3, the header 2)."""
    if att_mtu < BLE_MIN_ATT_MTU:
        raise ProtocolError(Reason.BAD_FRAGMENT, f"ATT MTU {att_mtu} below {BLE_MIN_ATT_MTU}")
    return att_mtu - 3 - FRAGMENT_HEADER_SIZE


def fragment(message: bytes, tag: int, att_mtu: int) -> list[bytes]:
    """Splits one encoded message into notification-sized fragments."""
    per = fragment_payload(att_mtu)
    if not 0 < len(message) <= MAX_MESSAGE_SIZE:
        raise ProtocolError(Reason.BAD_FRAGMENT, f"message of {len(message)} bytes")
    chunks = [message[i : i + per] for i in range(0, len(message), per)]
    if len(chunks) > MAX_FRAGMENTS:
        raise ProtocolError(Reason.BAD_FRAGMENT, f"{len(chunks)} fragments")
    last = len(chunks) - 1
    return [
        bytes((tag & 0xFF, i | (FRAGMENT_LAST if i == last else 0))) + chunk
        for i, chunk in enumerate(chunks)
    ]


class Reassembler:
    """Joins fragments of one peer's stream; ``push`` returns a whole message or None.

    A fragment that does not continue the message in progress raises
    ProtocolError(BAD_FRAGMENT) and drops that message; fragment 0 always
    starts a new one (the node restarted it, or the previous one was lost).
    """

    __slots__ = ("_buf", "_next", "_tag")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._tag = -1
        self._next = 0

    def push(self, frag: bytes) -> bytes | None:
        if len(frag) <= FRAGMENT_HEADER_SIZE:
            self._reset()
            raise ProtocolError(Reason.BAD_FRAGMENT, "empty fragment")
        tag, meta = frag[0], frag[1]
        index = meta & ~FRAGMENT_LAST
        if index == 0:
            self._buf.clear()
            self._tag = tag
        elif index != self._next or tag != self._tag:
            self._reset()
            raise ProtocolError(Reason.BAD_FRAGMENT, f"fragment {index} of tag {tag} out of order")
        self._buf += frag[FRAGMENT_HEADER_SIZE:]
        if len(self._buf) > MAX_MESSAGE_SIZE:
            self._reset()
            raise ProtocolError(Reason.BAD_FRAGMENT, "reassembled message too long")
        if meta & FRAGMENT_LAST:
            message = bytes(self._buf)
            self._reset()
            return message
        if index + 1 >= MAX_FRAGMENTS:
            self._reset()
            raise ProtocolError(Reason.BAD_FRAGMENT, "too many fragments")
        self._next = index + 1
        return None

    def _reset(self) -> None:
        self._buf.clear()
        self._next = 0
        self._tag = -1
