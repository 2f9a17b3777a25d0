"""What the pipeline stage keeps about nodes when a commit fails or its queue is full.

The gateway's own parts (outbox, registry, command router, ingest) built from a real
configuration; the disk is a real, small, full tmpfs.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import Clock
from gateway.ingest import Ingest
from gateway.logs import RateLimitedLog
from gateway.model import CommandRequest, Inbound, RecordKind
from gateway.protocol import Command, CommandCode, Event, Heartbeat, MsgType, decode, encode
from gateway.service import Gateway, build
from tests.peers import gateway_config
from tests.test_outbox import small_tmpfs

A, B = 0xD000, 0xD001


def _inbound(node_id: int, body: Event | Heartbeat, seq: int, sent: list[bytes]) -> Inbound:
    async def downlink(message: bytes) -> None:
        sent.append(message)

    raw = encode(body, node_id=node_id, boot_id=1, seq=seq, uptime_ms=1000 + seq)
    return Inbound(decode(raw), "serial", "/dev/test", Clock.now_ms(), downlink)


def _fill(disk: Path) -> None:
    with (disk / "filler").open("wb") as f, pytest.raises(OSError) as info:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    assert info.value.errno == errno.ENOSPC


async def _until(predicate, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s  # a hang guard only
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_commit_refused_for_a_full_disk_never_reuses_a_downlink_seq(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "small", "2m") as disk:
        cfg = gateway_config(disk, None, [], mqtt={"enabled": False})
        gw = await build(cfg)
        sent: list[bytes] = []
        task = asyncio.create_task(gw.ingest.run())
        try:
            await gw.ingest.put(_inbound(A, Event(1, 0, 1, 1), 1, sent))  # A is known, online
            await _until(lambda: gw.health.counters["acks_sent"] == 1)
            _fill(disk)
            # hold the outbox's worker, so that the next commit waits behind it
            gate = threading.Event()
            gw.outbox._pool.submit(gate.wait)
            await gw.ingest.put(_inbound(A, Event(1, 0, 1, 1), 2, sent))
            await _until(lambda: gw.ingest.busy_since is not None)  # its commit is waiting
            before = len(sent)  # A's ACK, and the get_info sent because A has no INFO
            command = asyncio.create_task(gw.router.request(A, CommandRequest(7, "ping"), ["ping"]))
            await _until(lambda: len(sent) > before)  # the ping went out meanwhile
            ping = decode(sent[-1])
            assert isinstance(ping.body, Command) and ping.body.command == CommandCode.PING
            used = ping.header.seq
            gate.set()  # the commit meets the full disk and is rolled back
            await _until(lambda: gw.health.counters["commit_failed_disk_full"] >= 1)
            await _until(lambda: gw.ingest.busy_since is None)
            node = gw.registry.get(A)
            assert node is not None
            assert node.state.downlink_seq >= used
            command.cancel()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await gw.outbox.close()


def own_ingest(gw: Gateway, **options: Any) -> Ingest:
    """An Ingest on the gateway's parts, with options the configuration does not set."""
    return Ingest(
        registry=gw.registry,
        outbox=gw.outbox,
        clock=Clock("assume-synced"),
        health=gw.health,
        router=gw.router,
        bad_input=RateLimitedLog(logging.getLogger("test"), 0),
        on_commit=lambda: None,
        commit_interval_ms=0,
        commit_max_events=100,
        **options,
    )


async def test_an_offline_change_is_kept_when_the_queue_is_full(tmp_path: Path) -> None:
    gw = await build(gateway_config(tmp_path, None, [], mqtt={"enabled": False}))
    ingest = own_ingest(gw, queue_size=2)
    sent: list[bytes] = []
    task = asyncio.create_task(ingest.run())
    try:
        await ingest.put(_inbound(A, Event(1, 0, 1, 1), 1, sent))
        await _until(lambda: ingest.c["records_committed"] >= 2)  # A online, its event
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # the queue fills with another node's heartbeats before A is found silent
        for i in (1, 2):
            ingest.queue.put_nowait(_inbound(B, Heartbeat(1, 2, 3, 4, 1, 0), i, sent))
        node = gw.registry.get(A)
        assert node is not None
        ingest.liveness.mark_offline(node, "no message for 3 heartbeat periods")
        task = asyncio.create_task(ingest.run())
        await _until(lambda: ingest.queue.empty() and ingest.busy_since is None)
        records = await gw.outbox.fetch(0, 100)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gw.outbox.close()
    statuses = [r.data for r in records if r.kind == RecordKind.STATUS and r.node_id == A]
    assert statuses[-1] == b'{"online": false, "reason": "no message for 3 heartbeat periods"}'


async def test_a_command_sent_after_the_last_commit_is_not_reused_after_a_restart(
    tmp_path: Path,
) -> None:
    """The counter of a command is stored only at the node's next commit; a gateway that
    stops before it must still go on above it (keyed nodes refuse a seq seen before)."""
    cfg = gateway_config(tmp_path, None, [], mqtt={"enabled": False}, commands={"timeout_s": 0.2})
    sent: list[bytes] = []
    gw = await build(cfg)
    task = asyncio.create_task(gw.ingest.run())
    try:
        await gw.ingest.put(_inbound(A, Event(1, 0, 1, 1), 1, sent))
        await _until(lambda: gw.health.counters["acks_sent"] == 1)
        await _until(lambda: len(sent) >= 2)  # the ACK, and get_info (A has no INFO)
        result = await gw.router.request(A, CommandRequest(7, "ping"), ["ping"])
        assert result.status == "timeout"  # nobody answers: no commit stores its seq
        used = max(decode(m).header.seq for m in sent)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gw.outbox.close()
    gw = await build(cfg)
    task = asyncio.create_task(gw.ingest.run())
    try:
        before = len(sent)
        await gw.ingest.put(_inbound(A, Event(1, 0, 1, 1), 2, sent))
        await _until(lambda: gw.health.counters["acks_sent"] == 1)
        ack = decode(sent[before])
        assert ack.header.type == MsgType.ACK
        assert ack.header.seq > used
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await gw.outbox.close()
