"""The server side: ThingsBoard's rules (tests/tb_checker.py) and a count of what arrived.

Runs in its own process, on the ThingsBoard-side broker itself (never through the proxy).
It answers getSessionLimits as the server does, and for every telemetry entry that carries
an event (``seq``) records its first arrival: the distinct events (device, boot, seq), the
re-deliveries of one already counted, the latency from the writer's stamp (``uptime_ms``:
the writer's monotonic clock in ms, mod 2^32; one clock for every process on a machine), and
the points the server would keep, one per (device, ts): two events of one device with the
same ts are one point on a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from tests.tb_checker import ThingsBoardChecker

WRAP = 1 << 32


@dataclass
class Tally:
    first: dict[tuple[str, int, int], float] = field(default_factory=dict)  # -> arrival, s
    latency_ms: list[float] = field(default_factory=list)
    duplicates: int = 0

    def add(self, device: str, values: dict[str, Any], now: float) -> None:
        seq, boot = values.get("seq"), values.get("boot", 0)
        if not isinstance(seq, int):
            return
        key = (device, int(boot) if isinstance(boot, int) else 0, seq)
        if key in self.first:
            self.duplicates += 1
            return
        self.first[key] = now
        stamp = values.get("uptime_ms")
        if isinstance(stamp, int):
            self.latency_ms.append((now * 1000 - stamp) % WRAP)


class Counter(ThingsBoardChecker):
    def __init__(self, port: int) -> None:
        super().__init__("127.0.0.1", port)
        self.tally = Tally()

    def _telemetry(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        now = time.monotonic()
        if isinstance(body, dict):
            for name, entries in body.items():
                for item in entries if isinstance(entries, list) else ():
                    values = item.get("values", item) if isinstance(item, dict) else None
                    if isinstance(values, dict):
                        self.tally.add(str(name), values, now)
        return super()._telemetry(topic, body, payload)

    def reset(self) -> None:
        self.tally = Tally()
        for dev in self.devices.values():  # still connected: only what they sent is cleared
            dev.telemetry.clear()
            dev.by_ts.clear()
            dev.duplicates = 0
        self.violations.clear()
        self.publishes = self.telemetry_publishes = 0

    def snapshot(self, *, latencies: bool = False, arrivals: bool = False) -> dict[str, Any]:
        t = self.tally
        out: dict[str, Any] = {
            "events": len(t.first),
            "duplicates": t.duplicates,
            "points": sum(len(d.by_ts) for d in self.devices.values()),
            "publishes": self.telemetry_publishes,
            "violations": len(self.violations),
            "violation_examples": self.violations[:3],
            "sessions": self.sessions,
            "first_s": min(t.first.values(), default=None),
            "last_s": max(t.first.values(), default=None),
        }
        if latencies:
            out["latency_ms"] = list(t.latency_ms)
        if arrivals:
            out["arrivals"] = [[d, b, q, at] for (d, b, q), at in t.first.items()]
        return out


def _main(port: int, conn: Connection) -> None:
    async def run() -> None:
        counter = Counter(port)
        await counter.start()
        conn.send("ready")
        loop = asyncio.get_running_loop()
        while True:
            cmd, kwargs = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                await counter.stop()
                conn.send(None)
                return
            if cmd == "reset":
                counter.reset()
                conn.send(None)
            else:
                conn.send(counter.snapshot(**kwargs))

    asyncio.run(run())


class CounterProcess:
    def __init__(self, port: int) -> None:
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=_main, args=(port, child), daemon=True)
        self._proc.start()
        if not self._conn.poll(30):
            raise RuntimeError("the counter did not connect to the broker")
        self._conn.recv()

    def _ask(self, cmd: str, **kwargs: bool) -> Any:
        self._conn.send((cmd, kwargs))
        if not self._conn.poll(60):
            raise RuntimeError(f"the counter did not answer {cmd!r}")
        return self._conn.recv()

    def reset(self) -> None:
        self._ask("reset")

    def snapshot(self, **kwargs: bool) -> dict[str, Any]:
        return self._ask("snapshot", **kwargs)  # type: ignore[no-any-return]

    def wait_settled(self, want: int, quiet_s: float, limit_s: float) -> dict[str, Any]:
        """Waits until ``want`` events arrived, or none for ``quiet_s``, or ``limit_s``."""
        t0 = last_change = time.monotonic()
        seen = -1
        while True:
            snap = self.snapshot()
            now = time.monotonic()
            if snap["events"] != seen:
                seen, last_change = snap["events"], now
            if seen >= want or now - last_change > quiet_s or now - t0 > limit_s:
                return snap
            time.sleep(0.1)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, EOFError):
            self._ask("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
