"""Consistent Overhead Byte Stuffing, the exact variant the C library writes.

A full 254-byte block implies no zero; a message ending on a full block gets a
trailing 0x01 code. ``encode`` must match ``tgw_frame_write`` byte for byte,
which the golden vectors check.
"""

from __future__ import annotations

from gateway.protocol.errors import ProtocolError, Reason


def encode(data: bytes) -> bytes:
    out = bytearray()
    for segment in data.split(b"\x00"):
        rest = segment
        while len(rest) >= 254:
            out.append(0xFF)
            out += rest[:254]
            rest = rest[254:]
        out.append(len(rest) + 1)
        out += rest
    return bytes(out)


def decode(data: bytes) -> bytes:
    """Inverse of :func:`encode`; raises ProtocolError(BAD_COBS).

    Fast path: without 254-byte blocks, every code byte after the first stands
    exactly where its zero goes, so decoding is overwriting codes with zeros.
    """
    n = len(data)
    buf = bytearray(data)
    i = 0
    while i < n:
        code = buf[i]
        if code == 0xFF:
            return _decode_blocks(data)
        if code == 0 or i + code > n:
            raise ProtocolError(Reason.BAD_COBS, f"code {code} at offset {i} of {n}")
        buf[i] = 0
        i += code
    return bytes(buf[1:])


def _decode_blocks(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        end = i + code
        if code == 0 or end > n:
            raise ProtocolError(Reason.BAD_COBS, f"code {code} at offset {i} of {n}")
        out += data[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
