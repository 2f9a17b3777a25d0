"""Writes tests/vectors/py_vectors.json: messages the Python codec encodes for the C decoder.

Run ``python -m tests.vectors.generate`` after a deliberate protocol change;
tests/test_protocol_vectors.py fails while the committed file differs.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from gateway.protocol import (
    Ack,
    Advert,
    Body,
    Command,
    CommandAck,
    CommandCode,
    Event,
    FeatureWindow,
    Heartbeat,
    Info,
    Log,
    MsgType,
    Status,
    decode,
    decode_advert,
    encode,
    encode_advert,
    encode_frame,
)
from gateway.protocol.constants import (
    MAX_COMMAND_ARGS,
    MAX_COMMAND_RESULT,
    MAX_LABELS,
    MAX_LOG_TEXT,
    MAX_SCORES,
    MAX_STRING,
    TEMPERATURE_UNKNOWN,
)
from tests.protocol_json import advert_to_dict, message_to_dict

PATH = Path(__file__).with_name("py_vectors.json")
KEY = bytes(range(32))


def _cases(rng: random.Random) -> list[tuple[str, Body, int, bool]]:
    """(name, body, seq, signed)."""
    window = FeatureWindow(
        (2, 2, 3, 4), 0.003921568859368563, -128, bytes(rng.randrange(256) for _ in range(48))
    )
    zeros = FeatureWindow((600,), 1.5, 0, bytes(600))
    return [
        (
            "event_max_scores",
            Event(0xFFFFFFFF, 31, 65535, 0xFFFFFFFF, tuple(range(0, 65535, 2048))[:MAX_SCORES]),
            9,
            False,
        ),
        ("event_rank4_window_auth", Event(7, 0, 0, 1, (), window), 10, True),
        ("event_zero_window", Event(1, 2, 3, 4, (5,), zeros), 11, False),
        ("heartbeat_extremes", Heartbeat(65535, 32767, 2**32 - 1, 0, 2**32 - 1, 65535), 11, False),
        ("heartbeat_unknown_temp", Heartbeat(0, TEMPERATURE_UNKNOWN, 0, 0, 1, 0), 0, True),
        (
            "info_max_labels",
            Info(
                1,
                7,
                65535,
                16000,
                32768,
                bytes(range(32)),
                "v" * MAX_STRING,
                "m\u00fc\u00df",
                tuple(f"label-{i}" for i in range(MAX_LABELS)),
            ),
            0,
            False,
        ),
        ("info_empty", Info(1, 0, 0, 0, 0, bytes(32), "", "", ()), 0, True),
        ("log_max", Log(0, "x" * (MAX_LOG_TEXT - 2) + "\u00e9"), 3, False),
        ("log_control_chars", Log(3, 'tab\there\nnl "q" \\'), 3, False),
        ("command_max_args", Command(1, 0xFE, bytes(range(MAX_COMMAND_ARGS))), 5, True),
        ("command_reboot", Command(77, CommandCode.REBOOT), 6, False),
        (
            "command_ack_max_result",
            CommandAck(2, CommandCode.GET_INFO, Status.FAILED, bytes(MAX_COMMAND_RESULT)),
            4,
            False,
        ),
        ("ack_zero", Ack(0, 0), 0, False),
        ("ack_auth", Ack(2**32 - 1, 2**32 - 1), 1, True),
    ]


def python_vectors() -> list[dict[str, Any]]:
    rng = random.Random(1234)
    out: list[dict[str, Any]] = []
    for i, (name, body, seq, signed) in enumerate(_cases(rng)):
        key = KEY if signed else None
        raw = encode(
            body,
            node_id=rng.getrandbits(64),
            boot_id=rng.getrandbits(32),
            seq=seq,
            uptime_ms=rng.getrandbits(32) if i % 3 else 0,
            key=key,
        )
        out.append(
            {
                "name": name,
                "kind": "frame",
                "key": None if key is None else key.hex(),
                "message_hex": raw.hex(),
                "frame_hex": encode_frame(raw).hex(),
                "decoded": message_to_dict(decode(raw)),
            }
        )
    adverts = [
        ("advert_event", Advert(MsgType.EVENT, 1, 2, 3, label=255, score=65535), None),
        (
            "advert_heartbeat",
            Advert(MsgType.HEARTBEAT, 2**64 - 1, 0, 0, battery_mv=3300, temperature_c=-128),
            None,
        ),
        ("advert_event_auth", Advert(MsgType.EVENT, 5, 6, 7, label=1, score=2), KEY),
    ]
    for name, adv, key in adverts:
        raw = encode_advert(adv, key)
        out.append(
            {
                "name": name,
                "kind": "advert",
                "key": None if key is None else key.hex(),
                "advert_hex": raw.hex(),
                "decoded": advert_to_dict(decode_advert(raw)),
            }
        )
    return out


def render() -> str:
    return json.dumps(python_vectors(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PATH}\n")
