"""Golden vectors: C-encoded messages decoded by Python and Python-encoded ones by C."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.protocol import (
    FrameDecoder,
    Reassembler,
    decode,
    decode_advert,
    encode,
    encode_advert,
    encode_frame,
    fragment,
    verify,
    verify_advert,
)
from gateway.protocol.advert import Advert
from gateway.protocol.constants import MsgType
from tests.protocol_json import (
    advert_to_dict,
    body_from_dict,
    message_to_dict,
    normalise,
)
from tests.vectors.generate import PATH as PY_VECTORS
from tests.vectors.generate import render

VECTORS = Path(__file__).parent / "vectors"
C_VECTORS: list[dict[str, Any]] = json.loads((VECTORS / "c_vectors.json").read_text("utf-8"))
PY: list[dict[str, Any]] = json.loads(PY_VECTORS.read_text("utf-8"))


def _key(v: dict[str, Any]) -> bytes | None:
    return None if v["key"] is None else bytes.fromhex(v["key"])


def test_committed_c_vectors_match_the_c_library(c_vectors_tool: Path) -> None:
    out = subprocess.run([str(c_vectors_tool), "gen"], check=True, capture_output=True).stdout
    assert json.loads(out) == C_VECTORS, (
        "regenerate: build/tgw_vectors gen > tests/vectors/c_vectors.json"
    )


def test_committed_python_vectors_match_the_python_codec() -> None:
    assert PY_VECTORS.read_text("utf-8") == render(), "regenerate: python -m tests.vectors.generate"


def test_vector_sets_cover_every_message_type() -> None:
    for vectors in (C_VECTORS, PY):
        types = {v["decoded"]["header"]["type"] for v in vectors if v["kind"] == "frame"}
        assert types == {int(t) for t in MsgType}
        assert any(v["kind"] == "advert" for v in vectors)
        assert any(v["key"] for v in vectors if v["kind"] == "frame")


@pytest.mark.parametrize(
    "v", [v for v in C_VECTORS if v["kind"] == "frame"], ids=lambda v: v["name"]
)
def test_python_decodes_c_frames_field_by_field(v: dict[str, Any]) -> None:
    frame = bytes.fromhex(v["frame_hex"])
    decoder = FrameDecoder()
    messages = [m for b in frame for m in decoder.feed(bytes([b]))]  # one byte at a time
    assert len(messages) == 1 and decoder.frames_bad == 0
    m = messages[0]
    assert normalise(message_to_dict(m)) == normalise(v["decoded"])
    key = _key(v)
    assert verify(m, key) if key else m.tag is None
    # and Python re-encodes the same fields to the same bytes
    h = v["decoded"]["header"]
    raw = encode(
        body_from_dict(h["type"], v["decoded"]["body"]),
        node_id=int(h["node_id"], 16),
        boot_id=h["boot_id"],
        seq=h["seq"],
        uptime_ms=h["uptime_ms"],
        key=key,
    )
    assert raw.hex() == v["message_hex"]
    assert encode_frame(raw).hex() == v["frame_hex"]


@pytest.mark.parametrize(
    "v", [v for v in C_VECTORS if v["kind"] == "advert"], ids=lambda v: v["name"]
)
def test_python_decodes_c_adverts(v: dict[str, Any]) -> None:
    adv = decode_advert(bytes.fromhex(v["advert_hex"]))
    assert advert_to_dict(adv) == v["decoded"]
    key = _key(v)
    if key:
        assert verify_advert(adv, key)
        assert not verify_advert(adv, key[::-1])
    plain = Advert(
        adv.kind,
        adv.node_id,
        adv.boot_id,
        adv.seq,
        adv.label,
        adv.score,
        adv.battery_mv,
        adv.temperature_c,
    )
    assert encode_advert(plain, key).hex() == v["advert_hex"]


@pytest.mark.parametrize(
    "v", [v for v in C_VECTORS if v["kind"] == "fragments"], ids=lambda v: v["name"]
)
def test_python_fragments_match_c(v: dict[str, Any]) -> None:
    frags = [bytes.fromhex(f) for f in v["fragments"]]
    r = Reassembler()
    results = [r.push(f) for f in frags]
    assert results[:-1] == [None] * (len(frags) - 1)
    assert results[-1] == bytes.fromhex(v["message_hex"])
    assert fragment(bytes.fromhex(v["message_hex"]), frags[0][0], v["mtu"]) == frags


def test_c_decodes_python_vectors_field_by_field(c_vectors_tool: Path) -> None:
    lines = []
    for v in PY:
        data = v["frame_hex"] if v["kind"] == "frame" else v["advert_hex"]
        lines.append(f"{v['kind']} {v['key'] or '-'} {data}")
    proc = subprocess.run(
        [str(c_vectors_tool), "decode"],
        input="\n".join(lines) + "\n",
        check=True,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(PY)
    for v, r in zip(PY, results, strict=True):
        assert r["ok"], (v["name"], r)
        assert normalise(r["decoded"]) == normalise(v["decoded"]), v["name"]
        if v["kind"] == "frame":
            assert r["verified"] is (True if v["key"] else None), v["name"]
            assert r["reframed_hex"] == v["frame_hex"], v["name"]
        else:
            assert r["reencoded_hex"] == v["advert_hex"], v["name"]


def test_c_refuses_what_python_refuses(c_vectors_tool: Path) -> None:
    good = bytes.fromhex(PY[0]["frame_hex"])
    corrupt = bytearray(good)
    corrupt[5] ^= 0x10
    signed = next(v for v in PY if v["key"] and v["kind"] == "frame")
    wrong_key = "ff" * 32
    lines = f"frame - {bytes(corrupt).hex()}\nframe {wrong_key} {signed['frame_hex']}\n"
    proc = subprocess.run(
        [str(c_vectors_tool), "decode"], input=lines, check=True, capture_output=True, text=True
    )
    first, second = (json.loads(x) for x in proc.stdout.splitlines())
    assert first["ok"] is False
    assert second["ok"] is True and second["verified"] is False
    assert FrameDecoder().feed(bytes(corrupt)) == []
    assert not verify(decode(bytes.fromhex(signed["message_hex"])), bytes.fromhex(wrong_key))
