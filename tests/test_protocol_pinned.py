"""The Python constants must equal the C header's: change one without the other and this fails."""

from __future__ import annotations

import re
from enum import IntEnum

import pytest

from gateway.protocol import constants as c
from tests.conftest import PROTOCOL_DIR

HEADER = (PROTOCOL_DIR / "include" / "tgw_protocol.h").read_text()
DEFINES = dict(re.findall(r"^#define TGW_(\w+) (\S.*?)\s*(?:/\*.*)?$", HEADER, re.MULTILINE))


def _c_value(name: str) -> int | str:
    text = DEFINES[name].strip()
    if text.startswith('"'):
        return text.strip('"')
    # integer literals, with C's u suffix and parentheses: (-32768), 0x80u
    return int(re.sub(r"(?<=[0-9a-fA-F])u$", "", text.strip("()")), 0)


PLAIN = {
    "PROTOCOL_VERSION",
    "HEADER_SIZE",
    "CRC_SIZE",
    "AUTH_TAG_SIZE",
    "MAX_MESSAGE_SIZE",
    "MAX_SCORES",
    "MAX_LABELS",
    "MAX_STRING",
    "MAX_LOG_TEXT",
    "MAX_WINDOW_RANK",
    "MAX_COMMAND_ARGS",
    "MAX_COMMAND_RESULT",
    "MODEL_HASH_SIZE",
    "SCORE_SCALE",
    "TEMPERATURE_UNKNOWN",
    "FLAG_AUTH",
    "BLE_SERVICE_UUID",
    "BLE_EVENT_CHAR_UUID",
    "BLE_COMMAND_CHAR_UUID",
    "BLE_INFO_CHAR_UUID",
    "BLE_COMPANY_ID",
    "FRAGMENT_HEADER_SIZE",
    "FRAGMENT_LAST",
    "MAX_FRAGMENTS",
    "BLE_MIN_ATT_MTU",
    "BLE_MAX_ATT_MTU",
    "ADV_SIZE_EVENT",
    "ADV_SIZE_HEARTBEAT",
    "ADV_TAG_SIZE",
    "ADV_FLAG_AUTH",
    "ADV_MAX_SIZE",
}

ENUMS: list[tuple[str, type[IntEnum]]] = [
    ("MSG_", c.MsgType),
    ("CMD_", c.CommandCode),
    ("STATUS_", c.Status),
    ("LOG_", c.LogLevel),
    ("CAP_", c.Capability),
]


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_constant_matches_header(name: str) -> None:
    assert getattr(c, name) == _c_value(name)


def test_max_frame_size_matches_header() -> None:
    text = DEFINES["MAX_FRAME_SIZE"]
    expr = text.replace("TGW_COBS_MAX", "cobs_max").replace(
        "TGW_MAX_MESSAGE_SIZE", "MAX_MESSAGE_SIZE"
    )
    expr = expr.replace("TGW_CRC_SIZE", "CRC_SIZE").replace("2u", "2")
    assert (
        eval(
            expr,
            {
                "cobs_max": c.cobs_max,
                "MAX_MESSAGE_SIZE": c.MAX_MESSAGE_SIZE,
                "CRC_SIZE": c.CRC_SIZE,
            },
        )
        == c.MAX_FRAME_SIZE
    )


@pytest.mark.parametrize(("prefix", "enum"), ENUMS, ids=[p for p, _ in ENUMS])
def test_enum_matches_header(prefix: str, enum: type[IntEnum]) -> None:
    in_header = {k[len(prefix) :]: _c_value(k) for k in DEFINES if k.startswith(prefix)}
    assert in_header == {m.name: m.value for m in enum}


def test_every_header_constant_is_pinned() -> None:
    enum_prefixes = tuple(p for p, _ in ENUMS)
    skip = {"PROTOCOL_H", "ENABLE_HMAC", "ENABLE_GATEWAY_SIDE", "MAX_FRAME_SIZE"}
    unpinned = {
        k for k in DEFINES if k not in PLAIN and k not in skip and not k.startswith(enum_prefixes)
    }
    assert unpinned == set(), "add these to gateway/protocol/constants.py and to PLAIN"


def test_header_fields_add_up_to_header_size() -> None:
    # version, type, flags, node_id, boot_id, seq, uptime_ms
    assert c.HEADER_SIZE == 1 + 1 + 1 + 8 + 4 + 4 + 4
