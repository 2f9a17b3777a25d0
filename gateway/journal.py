"""Logging to journald with structured fields, through its native protocol: one datagram
per line to /run/systemd/journal/socket (systemd.journal-fields(7)), so that no library
is needed (systemd-python has no wheels for a venv built from binary wheels).

Used when journald reads the gateway's stderr (``JOURNAL_STREAM`` names stderr's device
and inode, as systemd sets it for a unit): then ``journalctl -u tinyml-gateway NODE_ID=...``
finds every line about a node. Each line carries MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
LOGGER, CODE_*, and where the line names them, NODE_ID (16 hex digits after "node "),
SOURCE (a serial device, or "ble") and SINK (the bridge: mqtt or thingsboard).
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Mapping
from typing import Final, TextIO

from gateway.systemd import datagram_socket

SOCKET: Final = "/run/systemd/journal/socket"
IDENTIFIER: Final = "tinyml-gateway"
_PRIORITY: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}
_NODE = re.compile(r"\bnode ([0-9a-f]{16})\b")
_DEVICE = re.compile(r"(/dev/[^\s:,;)]+)")
_SINK = re.compile(r"^(mqtt|thingsboard)\b")


def wanted(env: Mapping[str, str], stderr: TextIO) -> bool:
    """Whether journald is what reads stderr (systemd.exec(5), JOURNAL_STREAM)."""
    stream = env.get("JOURNAL_STREAM", "")
    dev, _, ino = stream.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stderr.fileno())
    except (OSError, ValueError):  # a replaced stderr without a file descriptor
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def fields(record: logging.LogRecord, message: str) -> dict[str, str]:
    out = {
        "MESSAGE": message,
        "PRIORITY": str(_PRIORITY.get(record.levelno, 6)),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "LOGGER": record.name,
        "CODE_FILE": record.pathname,
        "CODE_LINE": str(record.lineno),
        "CODE_FUNC": record.funcName or "",
    }
    if m := _NODE.search(message):
        out["NODE_ID"] = m.group(1)
    if record.name.startswith("gateway.sources.ble"):
        out["SOURCE"] = "ble"
    elif m := _DEVICE.search(message):
        out["SOURCE"] = m.group(1)
    if record.name.startswith("gateway.sinks") and (m := _SINK.match(message)):
        out["SINK"] = m.group(1)
    return out


def encode(entry: Mapping[str, str]) -> bytes:
    """The native protocol: KEY=value lines; a value with a newline as KEY, newline, its
    length as 64-bit little-endian, the value, newline."""
    parts = []
    for key, value in entry.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            parts.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key.encode() + b"=" + data + b"\n")
    return b"".join(parts)


class JournalHandler(logging.Handler):
    """One datagram per line. A journald that is not there gets the line on ``fallback``
    (stderr, which journald may still read); one that is too busy loses the line."""

    def __init__(self, fallback: logging.Handler, path: str = SOCKET) -> None:
        super().__init__()
        self._fallback = fallback
        self._path = path
        self._sock = datagram_socket()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        try:
            self._sock.sendto(encode(fields(record, message)), self._path)
        except BlockingIOError:
            self.dropped += 1
        except OSError:
            self._fallback.handle(record)

    def close(self) -> None:
        self._sock.close()
        super().close()
