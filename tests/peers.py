"""Real peers for the tests: Mosquitto processes, an MQTT collector, a gateway runner."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.config import Config, parse_config
from gateway.service import Gateway, build, serve
from gateway.sources.serial import SerialSource


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mosquitto:
    """A Mosquitto broker on a free loopback port, which a test may stop and restart."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra: str = ""
    persistent: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def conf(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "max_queued_messages 0",  # never drop QoS 1 for a slow subscriber in tests
            "max_inflight_messages 0",
            f"persistence {'true' if self.persistent else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # as root, Mosquitto switches to user "mosquitto", who cannot write the
            # persistence file into pytest's private tmp dir; "root" keeps the user
            lines.append("user root")
        if "allow_anonymous" not in self.extra and "listener" not in self.extra:
            lines.append("allow_anonymous true")
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n" + self.extra + "\n")
        return path

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("mosquitto is not installed: run scripts/setup.sh (apt package mosquitto)")
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf())],
            stderr=open(self.workdir / "mosquitto.log", "ab"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"mosquitto did not start: {(self.workdir / 'mosquitto.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    _parsed: Any = None

    def json(self) -> Any:
        if self._parsed is None:
            self._parsed = json.loads(self.payload)
        return self._parsed


class Collector:
    """Subscribes like a Node-RED flow would and keeps everything that arrives."""

    def __init__(self, broker: Mosquitto, topic: str, *, client_id: str | None = None) -> None:
        self.broker = broker
        self.topic = topic
        self.client_id = client_id
        self.messages: list[Received] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)

    async def _run(self) -> None:
        persistent = self.client_id is not None
        while True:
            try:
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.client_id,
                    clean_session=not persistent,
                    max_queued_incoming_messages=0,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connected.set()
                    async for m in client.messages:
                        self.messages.append(Received(str(m.topic), bytes(m.payload), m.retain))  # type: ignore[arg-type]
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def where(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.endswith(suffix)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        """Hang guard only: fails the test if ``predicate`` is not true within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting on {self.topic} "
                    f"({len(self.messages)} messages so far)"
                )
            # predicates may walk every message: check a few times a second, not per message
            await asyncio.sleep(min(left, 0.25))


def gateway_config(
    tmp: Path, broker: Mosquitto | None, serial: list[str], **sections: dict[str, Any]
) -> Config:
    return parse_config(config_data(tmp, broker, serial, **sections))


def config_data(
    tmp: Path, broker: Mosquitto | None, serial: list[str], **sections: dict[str, Any]
) -> dict[str, Any]:
    """The TOML-shaped test configuration (what a user's file would hold)."""
    data: dict[str, Any] = {
        "gateway": {"id": "gw", "data_dir": str(tmp / "data"), "clock_check": "assume-synced"},
        "serial": [{"path": p, "reopen_max_s": 0.5, "rescan_s": 0.2} for p in serial],
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker.port if broker else free_port(),
            "reconnect_max_s": 1.0,
            "commands": [
                "ping",
                "get_info",
                "set_threshold",
                "set_heartbeat_period",
                "set_sample_rate",
            ],
        },
        "outbox": {"commit_interval_ms": 5},
        "log": {"bad_input_interval_s": 0},
        "health": {"interval_s": 1},
        "commands": {"timeout_s": 2},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


@contextlib.asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[Gateway]:
    """The gateway in this process, READY and reading every configured port that exists.

    Waiting for the ports matters: the serial source drops what was written before
    it opened a port (as a UART would), so nodes started earlier could lose their
    first messages, and with a small ring more than that.
    """
    gw = await build(cfg)
    task = asyncio.create_task(serve(gw))
    try:
        await asyncio.wait_for(gw.ready.wait(), 30)
        await asyncio.wait_for(_listening(gw), 30)
        yield gw
    finally:
        gw.stop.set()
        await asyncio.wait_for(task, 30)


async def _listening(gw: Gateway) -> None:
    serial = [s for s in gw.sources if isinstance(s, SerialSource)]
    paths = [s.cfg.path for s in serial if os.path.exists(s.cfg.path)]
    ports = {p: st for src in serial for p, st in src.ports.items()}
    while not all(p in ports and ports[p].open for p in paths):
        await asyncio.sleep(0.01)
        ports = {p: st for src in serial for p, st in src.ports.items()}


def env_without_coverage() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("COV_")}


def toml_text(data: dict, prefix: str = "") -> str:
    """Just enough TOML for a dumped Config."""
    scalars, tables, arrays = [], [], []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            arrays.append((k, v))
        else:
            scalars.append(f"{json.dumps(k)} = {json.dumps(v)}")
    out = "\n".join(scalars) + "\n"
    for k, v in tables:
        name = f"{prefix}{json.dumps(k)}"
        out += f"\n[{name}]\n" + toml_text(v, name + ".")
    for k, items in arrays:
        for item in items:
            out += f"\n[[{prefix}{json.dumps(k)}]]\n" + toml_text(item, f"{prefix}{json.dumps(k)}.")
    return out
