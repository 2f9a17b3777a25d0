"""Serial framing: ``0x00 COBS(message || CRC-32 LE) 0x00`` (docs/protocol.md, "Serial")."""

from __future__ import annotations

import zlib
from collections import Counter
from typing import Final

from gateway.protocol import cobs
from gateway.protocol.constants import CRC_SIZE, HEADER_SIZE, MAX_FRAME_SIZE, MAX_MESSAGE_SIZE
from gateway.protocol.errors import ProtocolError, Reason
from gateway.protocol.messages import Message, decode

DELIMITER: Final = b"\x00"
# Longest run of bytes between delimiters that can still be a valid frame.
_MAX_ENCODED: Final = MAX_FRAME_SIZE - 2


def encode_frame(message: bytes) -> bytes:
    """Frames one encoded message for a byte stream."""
    if len(message) > MAX_MESSAGE_SIZE:
        raise ProtocolError(Reason.TOO_LONG, f"{len(message)} bytes")
    crc = zlib.crc32(message).to_bytes(CRC_SIZE, "little")
    return DELIMITER + cobs.encode(message + crc) + DELIMITER


def unframe(chunk: bytes) -> bytes:
    """The message inside one frame's bytes (between delimiters); raises ProtocolError."""
    if len(chunk) > _MAX_ENCODED:
        raise ProtocolError(Reason.TOO_LONG, f"{len(chunk)} encoded bytes")
    data = cobs.decode(chunk)
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise ProtocolError(Reason.TOO_SHORT, f"{len(data)} bytes")
    body = data[:-CRC_SIZE]
    if zlib.crc32(body) != int.from_bytes(data[-CRC_SIZE:], "little"):
        raise ProtocolError(Reason.BAD_CRC, f"{len(data)}-byte frame")
    return body


class FrameDecoder:
    """Incremental decoder for one byte stream; never raises on bad input.

    ``feed`` returns the messages completed by the new bytes. Every refused
    frame is counted in ``errors`` by :class:`Reason`, and the most recent one
    is kept in ``last_error`` for a (rate-limited) log line. Memory is bounded:
    a run longer than any valid frame is skipped up to the next delimiter.
    """

    __slots__ = ("_discarding", "_pending", "bytes_in", "errors", "frames_ok", "last_error")

    def __init__(self) -> None:
        self._pending = b""
        self._discarding = False
        self.bytes_in = 0
        self.frames_ok = 0
        self.errors: Counter[Reason] = Counter()
        self.last_error: ProtocolError | None = None

    @property
    def frames_bad(self) -> int:
        return self.errors.total()

    def feed(self, data: bytes) -> list[Message]:
        self.bytes_in += len(data)
        *complete, tail = (self._pending + data).split(DELIMITER)
        out: list[Message] = []
        for i, chunk in enumerate(complete):
            if i == 0 and self._discarding:
                self._discarding = False
                self._refuse(ProtocolError(Reason.TOO_LONG, "frame longer than the limit"))
                continue
            if chunk:
                try:
                    out.append(decode(unframe(chunk)))
                except ProtocolError as exc:
                    self._refuse(exc)
        if len(tail) > _MAX_ENCODED:
            self._discarding = True
            tail = b""
        self._pending = tail
        self.frames_ok += len(out)
        return out

    def _refuse(self, exc: ProtocolError) -> None:
        self.errors[exc.reason] += 1
        self.last_error = exc
