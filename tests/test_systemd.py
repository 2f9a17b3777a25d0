"""The gateway under systemd's notify protocol: STATUS lines, a watchdog that stops when the
pipeline stalls, and SIGHUP reloads. The gateway runs as its own process with a real
NOTIFY_SOCKET (a datagram socket this test binds, as systemd does), a real Mosquitto and a
simulated node on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gateway.model import node_hex
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Collector, Mosquitto, config_data, toml_text

ROOT = Path(__file__).resolve().parent.parent
KEY_A, KEY_B = "11" * 32, "22" * 32
STATUS = re.compile(
    r"STATUS=(\d+) of (\d+) nodes online, (\d+) events/s, outbox (\d+) pending, "
    r"sinks (\d+)/(\d+) connected"
)


class Notifications:
    """What the gateway tells systemd, one datagram at a time, read by a thread as systemd
    reads them (a receiver that stops reading would fill the socket's buffer)."""

    def __init__(self, tmp: Path) -> None:
        self.path = str(tmp / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.seen: list[str] = []
        self._open = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._open:
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def mark(self) -> int:
        return len(self.seen)

    async def wait_for(
        self, predicate: Any, timeout: float = 60.0, since: int | None = None
    ) -> str:
        """The first datagram matching ``predicate`` from now on (or from ``since``, a
        ``mark()`` taken before the action that causes it)."""
        deadline = time.monotonic() + timeout
        start = len(self.seen) if since is None else since
        while True:
            end = len(self.seen)
            for text in self.seen[start:end]:
                if predicate(text):
                    return text
            start = end
            if time.monotonic() > deadline:
                raise AssertionError(f"no such notification in {timeout} s: {self.seen[-5:]}")
            await asyncio.sleep(0.05)

    async def collect(self, seconds: float) -> list[str]:
        start = len(self.seen)
        await asyncio.sleep(seconds)
        return self.seen[start:]

    def close(self) -> None:
        self._open = False
        self._reader.join(5)
        self.sock.close()


def spawn(
    config: Path, log: Path, notify: Notifications | str, watchdog_usec: int = 400_000
) -> subprocess.Popen[bytes]:
    path = notify if isinstance(notify, str) else notify.path
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(watchdog_usec)}
    env.pop("WATCHDOG_PID", None)
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
    )


async def started(
    tmp: Path, mosquitto: Mosquitto, data: dict[str, Any]
) -> tuple[Notifications, Path, Collector, subprocess.Popen[bytes]]:
    """The gateway process on this configuration, a notify socket and an event subscriber."""
    config = tmp / "gateway.toml"
    config.write_text(toml_text(data))
    notes, log = Notifications(tmp), tmp / "gateway.log"
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    return notes, log, sub, spawn(config, log, notes)


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()


async def test_status_lines_say_what_runs(tmp_path: Path, mosquitto: Mosquitto, pty) -> None:
    link = pty()
    node = SimulatedNode(0xA100)
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(config_data(tmp_path, mosquitto, [link.path])))
    notes, log = Notifications(tmp_path), tmp_path / "gateway.log"
    proc = spawn(config, log, notes)
    runner = NodeRunner(link, [node], rate_hz=20)
    sim = asyncio.create_task(runner.run())
    try:
        await notes.wait_for(lambda t: "READY=1" in t)
        line = await notes.wait_for(
            lambda t: (
                (m := STATUS.search(t)) is not None and m.group(1) == "1" and "WATCHDOG=1" in t
            )
        )
        m = STATUS.search(line)
        assert m is not None and m.group(2) == "1" and m.groups()[4:] == ("1", "1"), line
        proc.send_signal(signal.SIGTERM)
        await notes.wait_for(lambda t: "STOPPING=1" in t)
        # one SIGTERM only: a second one after the handlers are gone would kill it
        assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()[-3000:]
    finally:
        sim.cancel()
        stop(proc, log)
        notes.close()
    # READY came once the pipeline was up: the port open and the broker connected first
    text = log.read_text()
    ready = text.index("ready in")
    assert text.index(f"serial {link.path}: open") < ready
    assert text.index("mqtt: connected to") < ready


def test_the_watchdog_period_is_half_of_watchdogsec(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway.systemd import watchdog_interval_s

    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "garbage")
    assert watchdog_interval_s() is None


async def test_a_stalled_commit_stops_the_watchdog_until_it_finishes(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = SimulatedNode(0xA200)
    data = config_data(tmp_path, mosquitto, [link.path], health={"stall_s": 1.0})
    notes, log, sub, proc = await started(tmp_path, mosquitto, data)
    runner = NodeRunner(link, [node], rate_hz=20, count=200)
    try:
        await notes.wait_for(lambda t: "READY=1" in t)
        sim = asyncio.create_task(runner.run(until_acked=True))
        await sub.wait_for(lambda: len(sub.messages) >= 10)
        # another connection takes the outbox's write lock: the next commit waits on it
        lock = sqlite3.connect(tmp_path / "data" / "outbox.sqlite3", timeout=60)
        try:
            lock.execute("BEGIN IMMEDIATE")
            await notes.wait_for(lambda t: "STATUS=not healthy: a commit has not finished" in t)
            held = await notes.collect(1.5)
            assert held and not [t for t in held if "WATCHDOG=1" in t], held
        finally:
            lock.rollback()
            lock.close()
        await notes.wait_for(lambda t: "WATCHDOG=1" in t)
        try:
            await asyncio.wait_for(asyncio.shield(sim), 120)
        except TimeoutError:
            raise AssertionError(
                f"node: seq {node.seq}, ring {len(node.ring)}; subscriber: {len(sub.messages)}"
            ) from None
        await sub.wait_for(lambda: len({m.json()["seq"] for m in sub.messages}) == 200)
    finally:
        await sub.stop()
        stop(proc, log)
        notes.close()
    text = log.read_text()
    assert text.count("not healthy, watchdog pings stop") == 1
    assert "healthy again, watchdog pings resume" in text


async def test_sighup_reloads_a_node_key_and_names_what_needs_a_restart(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = SimulatedNode(0xA300, key=bytes.fromhex(KEY_B))
    hexid = node_hex(node.node_id)
    data = config_data(tmp_path, mosquitto, [link.path], nodes={hexid: {"key": KEY_A}})
    notes, log, sub, proc = await started(tmp_path, mosquitto, data)
    config = tmp_path / "gateway.toml"
    sim = asyncio.create_task(NodeRunner(link, [node], rate_hz=20).run())
    try:
        await notes.wait_for(lambda t: "READY=1" in t)
        await asyncio.sleep(1.0)  # the node's messages carry the other key: all refused
        assert not sub.messages
        # a file that does not validate changes nothing
        config.write_text(toml_text({**data, "nodes": {hexid: {"key": "zz"}}}))
        mark = notes.mark()
        proc.send_signal(signal.SIGHUP)
        await notes.wait_for(lambda t: "RELOADING=1" in t and "MONOTONIC_USEC=" in t, since=mark)
        await notes.wait_for(lambda t: "READY=1" in t, since=mark)
        # the right key, and a change that only a restart applies
        fixed = {
            **data,
            "nodes": {hexid: {"key": KEY_B, "name": "press-7"}},
            "mqtt": {**data["mqtt"], "keepalive_s": 17},
            "log": {**data["log"], "level": "warning"},
        }
        config.write_text(toml_text(fixed))
        mark = notes.mark()
        proc.send_signal(signal.SIGHUP)
        await notes.wait_for(lambda t: "RELOADING=1" in t, since=mark)
        await notes.wait_for(lambda t: "READY=1" in t, since=mark)
        await sub.wait_for(lambda: len(sub.messages) >= 5)
        assert sub.messages[-1].json()["name"] == "press-7"
    finally:
        sim.cancel()
        await sub.stop()
        stop(proc, log)
        notes.close()
    text = log.read_text()
    assert f"reload refused, nothing changed: nodes.{hexid}: key must be hexadecimal" in text
    assert "applied only at the next restart: mqtt.keepalive_s" in text
    # the new log level took effect: nothing at INFO after the reload
    assert " INFO " not in text.split("reloaded:")[-1] and "gateway.service: stopped" not in text


async def test_a_notify_socket_nobody_reads_never_stops_the_gateway(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    """A receiver that stopped reading fills its queue (10 datagrams by default); the
    gateway's next notification must fail, not block the event loop."""
    link = pty()
    node = SimulatedNode(0xA400)
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(config_data(tmp_path, mosquitto, [link.path])))
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(tmp_path / "deaf.sock"))
    log = tmp_path / "gateway.log"
    sub = Collector(mosquitto, "tinyml/gw/+/event")
    await sub.start()
    proc = spawn(config, log, str(tmp_path / "deaf.sock"), watchdog_usec=100_000)
    try:
        runner = NodeRunner(link, [node], rate_hz=20, count=100)
        await asyncio.wait_for(runner.run(until_acked=True), 120)  # hang guard
        await sub.wait_for(lambda: len({m.json()["seq"] for m in sub.messages}) == 100)
    finally:
        await sub.stop()
        stop(proc, log)
        deaf.close()
