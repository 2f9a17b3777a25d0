"""The gateways under test, one process each, behind one interface.

``start()`` execs the process and returns at once (start-up is measured at the counter);
``buffered()`` says how many events a gateway holds for the server where it can tell.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.bench_pipeline import kb_as_mb, proc_status
from bench.compare.feed import MqttFeeder, PtyFeeder
from bench.compare.peer import PEER_VERSION, PeerEnv
from tests.peers import Mosquitto, config_data, toml_text

ROOT = Path(__file__).resolve().parents[2]
TERM_WAIT_S = 30.0


class Feeder(Protocol):
    def send(self, events: list[Any], rate: float | None = None, same_ms: bool = False) -> None: ...

    def flood(self, events: list[Any]) -> float: ...

    def close(self) -> None: ...


@dataclass
class Process:
    """What every subject shares: its process, signals, and /proc figures."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    started_s: float = 0.0

    def _spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> float:
        log = open(self.workdir / "process.log", "ab")
        self.started_s = time.monotonic()
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self.started_s

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> str:
        """Signals the process and reaps it; says how it ended."""
        if self.proc is None or self.proc.poll() is not None:
            return "not running"
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(TERM_WAIT_S)
            how = f"exit {rc}"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            how = f"still running after {TERM_WAIT_S:g} s: killed"
        self.proc = None
        return how

    def proc_figures(self) -> dict[str, float]:
        status = proc_status(self.pid)
        stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return {
            "rss_mb": kb_as_mb(status["VmRSS"]),
            "threads": int(status["Threads"]),
            "cpu_s": (int(stat[11]) + int(stat[12])) / ticks,  # utime + stime
        }


@dataclass
class Ours(Process):
    """tinyml-gateway: serial ptys in, ThingsBoard bridge out (and the Node-RED bridge)."""

    name: str = "tinyml-gateway"
    nodered: bool = False
    broker: Mosquitto | None = None  # the ThingsBoard-side broker, for the Node-RED bridge
    tb_port: int = 0  # the proxy
    feeder: PtyFeeder = field(default_factory=PtyFeeder)

    def start(self) -> float:
        data = config_data(self.workdir, self.broker, self.feeder.paths)
        data["gateway"]["id"] = "bench"
        data["outbox"] = {}  # the product's defaults
        data["log"] = {"level": "warning"}
        data["health"] = {"interval_s": 30}
        data["mqtt"]["enabled"] = self.nodered
        data["thingsboard"] = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": self.tb_port,
            "access_token": "ours",
            "reconnect_max_s": 1.0,
        }
        cfg = self.workdir / "gateway.toml"
        cfg.write_text(toml_text(data))
        argv = [sys.executable, "-m", "gateway", "run", "-c", str(cfg)]
        return self._spawn(argv, dict(os.environ), ROOT)

    def buffered(self) -> int | None:
        """Events stored in the outbox and not yet confirmed by ThingsBoard."""
        db = self.workdir / "data" / "outbox.sqlite3"
        if not db.exists():
            return 0
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute(
                "SELECT count(*) FROM records WHERE kind = 1 AND id > coalesce("
                "(SELECT acked FROM sinks WHERE name = 'thingsboard'), 0)"
            ).fetchone()
            return int(row[0])
        except sqlite3.Error:
            return None
        finally:
            con.close()

    def versions(self) -> dict[str, str]:
        from gateway import __version__

        return {"tinyml-gateway": __version__, "python": sys.version.split()[0]}


@dataclass
class Peer(Process):
    """ThingsBoard IoT Gateway: its MQTT connector in, its ThingsBoard client out."""

    name: str = "tb-gateway"
    env: PeerEnv | None = None
    storage: str = "memory"  # "memory" (its default) or "sqlite" (its most durable)
    field_port: int = 0
    tb_port: int = 0  # the proxy
    feeder: MqttFeeder | None = None

    def __post_init__(self) -> None:
        self.feeder = MqttFeeder(self.field_port)

    def start(self) -> float:
        assert self.env is not None
        config = self.workdir / "config"
        if not config.exists():
            self.env.write_config(
                config,
                tb_port=self.tb_port,
                field_port=self.field_port,
                storage=self.storage,
                data=self.workdir / "data",
                client_id=f"tb-gateway-{self.workdir.name}",
            )
        (self.workdir / "logs").mkdir(exist_ok=True)
        env = {**os.environ, "TB_GW_CONFIG_DIR": str(config)}
        return self._spawn(self.env.argv(), env, self.workdir)

    def buffered(self) -> int | None:
        return None  # nothing outside the process tells

    def versions(self) -> dict[str, str]:
        assert self.env is not None
        return {"thingsboard-gateway": PEER_VERSION, "python": self.env.python_version()}


def fresh(workdir: Path) -> Path:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    return workdir


def dump(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1))
