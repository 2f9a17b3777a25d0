"""The service as systemd runs it, and against a broker that refuses it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiomqtt

from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Mosquitto, config_data, gateway_config, running, toml_text

ROOT = Path(__file__).resolve().parent.parent


async def test_a_broker_refusing_the_credentials_is_survived(tmp_path: Path, pty, caplog) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "gateway", "right"], check=True)
    pwfile.chmod(0o644)
    broker = Mosquitto(tmp_path, extra=f"allow_anonymous false\npassword_file {pwfile}")
    broker.start()
    link = pty()
    node = SimulatedNode(0x8000)
    cfg = gateway_config(
        tmp_path,
        broker,
        [link.path],
        mqtt={"username": "gateway", "password": "wrong", "reconnect_max_s": 0.5},
    )
    try:
        async with running(cfg) as gw:
            await asyncio.wait_for(
                NodeRunner(link, [node], rate_hz=50, count=20).run(until_acked=True), 30
            )
            await asyncio.sleep(2)  # several refused attempts
            assert gw.sinks[0].session.connected is False
            assert gw.health.counters["events"] == 20  # stored, acknowledged, waiting
            assert await gw.outbox.pending("mqtt") >= 20
        refusals = [r for r in caplog.records if "refused the credentials" in r.getMessage()]
        assert len(refusals) == 1 and refusals[0].levelname == "WARNING"  # once, then DEBUG
        assert "Traceback" not in caplog.text
        # with the right password the stored events go out
        subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "reader", "r"], check=True)
        broker.stop()
        broker.start()
        cfg = gateway_config(
            tmp_path, broker, [link.path], mqtt={"username": "gateway", "password": "right"}
        )
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="reader", password="r"
        ) as client:
            await client.subscribe("tinyml/gw/+/event", qos=1)
            async with running(cfg):
                seqs: set[int] = set()
                async with asyncio.timeout(30):  # hang guard
                    async for m in client.messages:
                        seqs.add(json.loads(m.payload)["seq"])
                        if len(seqs) == 20:
                            break
        assert seqs == set(range(1, 21))
    finally:
        broker.stop()


def _notify_socket(tmp: Path) -> tuple[socket.socket, str]:
    path = str(tmp / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    return sock, path


def test_ready_watchdog_and_clean_stop_under_systemd(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(config_data(tmp_path, mosquitto, [link.path])))
    sock, path = _notify_socket(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "gateway.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=ROOT,
        env=env,
        stderr=open(log, "w"),
    )
    try:
        seen = []
        while "READY=1" not in "".join(seen) or "WATCHDOG=1" not in "".join(seen):
            seen.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in seen[-1]:
            try:
                seen.append(sock.recv(4096).decode())
            except TimeoutError:
                raise AssertionError(f"{seen[-5:]} {log.read_text()[-2000:]}") from None
        proc.wait(timeout=30)
        err = log.read_text()
        assert proc.returncode == 0, err
        assert "stopped" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_an_outbox_that_is_not_a_database_stops_the_start_with_one_line(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    data = config_data(tmp_path, mosquitto, [])
    (tmp_path / "data").mkdir()
    bad = tmp_path / "data" / "outbox.sqlite3"
    bad.write_bytes(b"\x89PNG not a database" * 64)
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    r = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 74
    assert "not a usable SQLite database" in r.stderr and "Traceback" not in r.stderr
    assert bad.read_bytes().startswith(b"\x89PNG")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_node_forget_from_the_shell_reaches_a_gateway_that_starts_later(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = SimulatedNode(0x7700)
    data = config_data(tmp_path, mosquitto, [link.path])
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    r = await asyncio.to_thread(_cli, "node", "forget", "xyz", "-c", str(config))
    assert r.returncode == 64 and "16 lowercase hex digits" in r.stderr
    r = await asyncio.to_thread(_cli, "node", "forget", "0000000000007700", "-c", str(config))
    assert r.returncode == 74 and "no outbox" in r.stderr and "Traceback" not in r.stderr
    cfg = gateway_config(tmp_path, mosquitto, [link.path])
    async with running(cfg) as gw:
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=20, count=3).run(until_acked=True), 60
        )
    r = await asyncio.to_thread(
        _cli, "node", "forget", "0000000000007700", "-c", str(config), "--wait", "0.3"
    )
    assert r.returncode == 0 and "when it next runs" in r.stdout, r.stderr
    async with running(cfg) as gw:
        while gw.registry.get(0x7700).state.seq.epoch != 1:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        while await gw.outbox.requests():
            await asyncio.sleep(0.05)
