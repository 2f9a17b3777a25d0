"""Wire protocol v1 constants.

Mirrors ``mcu_firmware/protocol/include/tgw_protocol.h``, which is the source
of truth; ``tests/test_protocol_pinned.py`` fails when the two differ.
"""

from __future__ import annotations

from enum import IntEnum

PROTOCOL_VERSION = 1
HEADER_SIZE = 23
CRC_SIZE = 4
AUTH_TAG_SIZE = 8
MAX_MESSAGE_SIZE = 1024


def cobs_max(n: int) -> int:
    """Largest COBS encoding of ``n`` bytes."""
    return n + n // 254 + 1


MAX_FRAME_SIZE = cobs_max(MAX_MESSAGE_SIZE + CRC_SIZE) + 2
MAX_SCORES = 32
MAX_LABELS = 32
MAX_STRING = 63
MAX_LOG_TEXT = 200
MAX_WINDOW_RANK = 4
MAX_COMMAND_ARGS = 32
MAX_COMMAND_RESULT = 64
MODEL_HASH_SIZE = 32
SCORE_SCALE = 65535
TEMPERATURE_UNKNOWN = -32768

FLAG_AUTH = 0x01

BLE_SERVICE_UUID = "7e1a0001-5c6b-4f1e-9d3a-6b8f2a9c0d11"
BLE_EVENT_CHAR_UUID = "7e1a0002-5c6b-4f1e-9d3a-6b8f2a9c0d11"
BLE_COMMAND_CHAR_UUID = "7e1a0003-5c6b-4f1e-9d3a-6b8f2a9c0d11"
BLE_INFO_CHAR_UUID = "7e1a0004-5c6b-4f1e-9d3a-6b8f2a9c0d11"
BLE_COMPANY_ID = 0xFFFF
FRAGMENT_HEADER_SIZE = 2
FRAGMENT_LAST = 0x80
MAX_FRAGMENTS = 128
BLE_MIN_ATT_MTU = 23
BLE_MAX_ATT_MTU = 247
ADV_SIZE_EVENT = 20
ADV_SIZE_HEARTBEAT = 20
ADV_TAG_SIZE = 4
ADV_FLAG_AUTH = 0x08
ADV_MAX_SIZE = 24


class MsgType(IntEnum):
    EVENT = 0x01
    HEARTBEAT = 0x02
    INFO = 0x03
    LOG = 0x04
    COMMAND_ACK = 0x05
    COMMAND = 0x81
    ACK = 0x82


class CommandCode(IntEnum):
    PING = 0x01
    GET_INFO = 0x02
    SET_THRESHOLD = 0x03
    SET_SAMPLE_RATE = 0x04
    SET_HEARTBEAT_PERIOD = 0x05
    REBOOT = 0x06


class Status(IntEnum):
    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    BAD_ARGUMENT = 0x02
    BUSY = 0x03
    FAILED = 0x04


class LogLevel(IntEnum):
    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


class Capability(IntEnum):
    DOWNLINK = 0x01
    WINDOW = 0x02
    AUTH = 0x04
