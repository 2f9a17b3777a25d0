"""Bad input on real pseudo-terminals: counted, logged once, never fatal, never harmful."""

from __future__ import annotations

import asyncio
import logging
import os
import zlib
from pathlib import Path

import pytest

from gateway.model import node_hex
from gateway.protocol import Event, cobs, encode, encode_frame
from gateway.protocol.constants import MAX_FRAME_SIZE
from gateway.sim.link import NodeRunner, open_pty
from gateway.sim.node import SimulatedNode, expected_event
from tests.peers import Collector, Mosquitto, gateway_config, running

KEY = bytes(range(32))


def event_frame(node: int, seq: int, *, boot: int = 1, key: bytes | None = None) -> bytes:
    return encode_frame(
        encode(
            expected_event(node, seq),
            node_id=node,
            boot_id=boot,
            seq=seq,
            uptime_ms=seq * 10,
            key=key,
        )
    )


async def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Hang guard only."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


async def test_garbage_truncated_and_corrupt_frames_do_not_hurt_good_ones(
    tmp_path: Path, mosquitto: Mosquitto, pty, caplog: pytest.LogCaptureFixture
) -> None:
    link = pty()
    cfg = gateway_config(tmp_path, mosquitto, [link.path], log={"bad_input_interval_s": 60})
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    caplog.set_level(logging.WARNING, logger="gateway.input")
    async with running(cfg) as gw:
        await until(
            lambda: gw.sources[0].ports.get(link.path) and gw.sources[0].ports[link.path].open
        )
        good = [event_frame(0x4000, s) for s in range(1, 7)]
        body = bytearray(
            encode(expected_event(0x4000, 99), node_id=0x4000, boot_id=1, seq=99, uptime_ms=1)
        )
        crc = zlib.crc32(body).to_bytes(4, "little")
        body[30] ^= 0x20  # one flipped bit, the old CRC
        corrupt = b"\x00" + cobs.encode(bytes(body) + crc) + b"\x00"
        stream = b"".join(
            [
                os.urandom(3000).replace(b"\x00", b"\x01"),  # noise longer than any frame
                b"\x00",
                good[0],
                good[1][: len(good[1]) // 2],  # truncated, then the next frame
                good[2],
                bytes(corrupt),
                b"\x00" + b"\x07" * (2 * MAX_FRAME_SIZE) + b"\x00",  # a huge length
                good[3],
                b"\x00\x00\x00",
                good[4],
                encode_frame(
                    b"\x09"
                    + encode(Event(1, 1, 1, 1), node_id=0x4000, boot_id=1, seq=50, uptime_ms=1)[1:]
                ),  # protocol v9
                good[5],
            ]
        )
        for i in range(0, len(stream), 97):  # arrives in odd-sized pieces
            link.write(stream[i : i + 97])
            await asyncio.sleep(0.001)
        await sub.wait_for(lambda: len(sub.messages) >= 5)
        stats = gw.sources[0].ports[link.path]
        await until(lambda: stats.bad.total() >= 5)
        seqs = sorted(m.json()["seq"] for m in sub.messages)
        assert seqs == [1, 3, 4, 5, 6]
        assert stats.bad["too_long"] >= 2 and stats.bad["bad_crc"] >= 1
        assert stats.bad["unsupported_version"] == 1
        assert stats.open  # the port was never closed over it
        # the gateway-wide total the ThingsBoard gateway chain watches
        assert gw.health.payload()["totals"]["frames_bad"] == stats.bad.total()
    # one line for the first bad frame; the rest were counted, not logged
    lines = [r for r in caplog.records if r.name == "gateway.input"]
    assert 1 <= len(lines) <= 2
    assert "Traceback" not in caplog.text
    await sub.stop()


async def test_a_port_that_vanishes_and_returns_recovers_by_itself(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    stable = by_id / "usb-tinyml-node-0"
    link = open_pty()
    stable.symlink_to(link.path)
    node = SimulatedNode(0x4100, ring_size=10_000, retx_timeout_ms=500)
    cfg = gateway_config(tmp_path, mosquitto, [str(by_id / "*")])
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    async with running(cfg) as gw:
        runner = NodeRunner(link, [node], rate_hz=200, count=600)
        first = asyncio.create_task(runner.run())
        await until(lambda: node.seq >= 200)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        link.close()  # unplugged: the device node disappears
        stable.unlink()
        await until(lambda: not gw.registry.get(0x4100).online)
        await asyncio.sleep(0.5)
        link = open_pty()  # plugged back in, behind the same by-id name
        stable.symlink_to(link.path)
        runner = NodeRunner(link, [node], rate_hz=200, count=600)
        await asyncio.wait_for(runner.run(until_acked=True), 60)
        await sub.wait_for(lambda: len({m.json()["seq"] for m in sub.messages}) == 600)
        assert gw.sources[0].ports[str(stable)].opens >= 2
    link.close()
    await sub.stop()


@pytest.mark.parametrize("policy", ["accept", "reject"])
async def test_unknown_nodes_follow_the_policy(
    tmp_path: Path, mosquitto: Mosquitto, pty, policy: str
) -> None:
    link = pty()
    known = 0x4200
    cfg = gateway_config(
        tmp_path, mosquitto, [link.path], nodes={"unknown": policy, node_hex(known): {}}
    )
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    async with running(cfg) as gw:
        await until(
            lambda: gw.sources[0].ports.get(link.path) and gw.sources[0].ports[link.path].open
        )
        link.write(event_frame(0x4299, 1) + event_frame(known, 1) + event_frame(0x4299, 2))
        await sub.wait_for(lambda: any(m.json()["node"] == node_hex(known) for m in sub.messages))
        await asyncio.sleep(0.3)
        strangers = [m for m in sub.messages if m.json()["node"] == node_hex(0x4299)]
        if policy == "accept":
            await sub.wait_for(
                lambda: len([m for m in sub.messages if m.json()["node"] == node_hex(0x4299)]) == 2
            )
            assert gw.health.counters["rejected_unknown_node"] == 0
        else:
            assert strangers == []
            assert gw.health.counters["rejected_unknown_node"] == 2
    await sub.stop()


async def test_at_the_node_cap_each_new_node_takes_an_unconfirmed_ones_place(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    """Four one-frame nodes and a cap of two: every event is stored, none refused, and the
    two heard last are known (docs/decisions.md, "At the cap, a new node always gets in")."""
    link = pty()
    cfg = gateway_config(tmp_path, mosquitto, [link.path], nodes={"max_nodes": 2})
    async with running(cfg) as gw:
        await until(
            lambda: gw.sources[0].ports.get(link.path) and gw.sources[0].ports[link.path].open
        )
        link.write(b"".join(event_frame(0x4300 + i, 1) for i in range(4)))
        await until(lambda: gw.health.counters["events"] == 4)
        await until(lambda: gw.health.counters["nodes_forgotten"] == 2)
        assert gw.health.counters["rejected_unknown_node"] == 0
        assert {n.node_id for n in gw.registry.all()} == {0x4302, 0x4303}


async def test_keyed_nodes_refuse_forgeries_and_replays(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = 0x4400
    cfg = gateway_config(
        tmp_path, mosquitto, [link.path], nodes={node_hex(node): {"key": KEY.hex()}}
    )
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    async with running(cfg) as gw:
        await until(
            lambda: gw.sources[0].ports.get(link.path) and gw.sources[0].ports[link.path].open
        )
        signed = [event_frame(node, s, boot=5, key=KEY) for s in (1, 2, 3)]
        link.write(signed[0] + signed[1])
        link.write(event_frame(node, 3, boot=5))  # unsigned
        link.write(event_frame(node, 4, boot=5, key=KEY[::-1]))  # wrong key
        link.write(signed[0])  # replayed
        link.write(event_frame(node, 9, boot=4, key=KEY))  # an older boot
        link.write(signed[2])
        await sub.wait_for(lambda: len(sub.messages) >= 3)
        await until(lambda: gw.health.counters["rejected_stale"] >= 1)
        c = gw.health.counters
        assert sorted(m.json()["seq"] for m in sub.messages) == [1, 2, 3]
        assert (
            c["rejected_unauthenticated"] == 2 and c["duplicates"] == 1 and c["rejected_stale"] == 1
        )
    await sub.stop()


async def test_dedup_and_replay_state_survive_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    cfg = gateway_config(tmp_path, mosquitto, [link.path])
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    frames = [event_frame(0x4500, s, boot=2) for s in range(1, 4)]
    async with running(cfg) as gw:
        await until(
            lambda: gw.sources[0].ports.get(link.path) and gw.sources[0].ports[link.path].open
        )
        link.write(b"".join(frames))
        await sub.wait_for(lambda: len(sub.messages) == 3)
    async with running(cfg) as gw:
        await until(
            lambda: gw.sources[0].ports.get(link.path) and gw.sources[0].ports[link.path].open
        )
        link.write(b"".join(frames) + event_frame(0x4500, 4, boot=2))
        await sub.wait_for(lambda: len(sub.messages) == 4)
        await until(lambda: gw.health.counters["duplicates"] == 3)
    assert [m.json()["seq"] for m in sub.messages] == [1, 2, 3, 4]
    await sub.stop()
