"""The Prometheus endpoint ([metrics], docs/metrics.md): the health payload as metrics.

Every scrape is computed on the event loop from the same health payload the gateway
publishes on ``<prefix>/<gw>/status``, so the two always agree, and nothing is read from
another thread. A small HTTP server on asyncio answers ``GET /metrics``; prometheus-client
(the ``metrics`` extra) renders the text format.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.nodes import LiveNode

log = logging.getLogger(__name__)

P = "tinyml_gateway"
# per-sink and per-source fields that go up and down; every other number there counts
SINK_GAUGES = frozenset({"connected", "devices_connected", "inflight", "pending"})
SOURCE_GAUGES = frozenset({"open"})
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def _name(key: str) -> str:
    return _UNSAFE.sub("_", key)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class HealthCollector(Collector):
    def __init__(
        self, payload: Callable[[], dict[str, Any]], nodes: Callable[[], list[LiveNode]]
    ) -> None:
        self._payload = payload
        self._nodes = nodes

    def collect(self) -> Iterator[Metric]:
        h = self._payload()
        info = GaugeMetricFamily(
            f"{P}_info", "The gateway's id and version.", labels=["gateway", "version"]
        )
        info.add_metric([h["gateway"], h["version"]], 1.0)
        yield info
        yield GaugeMetricFamily(
            f"{P}_uptime_seconds", "Seconds since the start.", value=h["uptime_s"]
        )
        for key, value in sorted(h["counters"].items()):
            yield CounterMetricFamily(f"{P}_{_name(key)}", f"Health counter {key}.", value=value)
        yield from self._nodes_section(h.get("nodes", {}))
        yield from self._outbox(h.get("outbox", {}))
        yield from self._labelled("sink", h.get("sinks", {}), SINK_GAUGES)
        yield from self._sources(h.get("sources", {}))
        totals = h.get("totals", {})
        if "frames_bad" in totals:
            yield CounterMetricFamily(
                f"{P}_frames_bad", "Bad frames of every port and link.", value=totals["frames_bad"]
            )
        yield from self._verify(h.get("verify"))

    def _nodes_section(self, section: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily(f"{P}_nodes_known", "Nodes known.", value=section.get("known", 0))
        yield GaugeMetricFamily(
            f"{P}_nodes_online", "Nodes online.", value=section.get("online", 0)
        )
        online = GaugeMetricFamily(
            f"{P}_node_online", "1 while the node is online.", labels=["node"]
        )
        age = GaugeMetricFamily(
            f"{P}_node_last_seen_age_seconds", "Seconds since the node was heard.", labels=["node"]
        )
        now = time.monotonic()
        for node in self._nodes():
            hexid = f"{node.node_id:016x}"
            online.add_metric([hexid], float(node.online))
            if node.last_seen:
                age.add_metric([hexid], round(now - node.last_seen, 3))
        yield online
        yield age

    def _outbox(self, section: dict[str, Any]) -> Iterator[Metric]:
        gauges = {
            "used_bytes": ("outbox_used_bytes", "Bytes the outbox database uses."),
            "queue": ("outbox_queue", "Messages waiting for the pipeline."),
            "batch_running_s": (
                "outbox_batch_running_seconds",
                "How long the running commit has run.",
            ),
        }
        per_sink: dict[str, CounterMetricFamily] = {}
        for key, value in section.items():
            number = _number(value)
            if number is None:
                continue
            if key in gauges:
                name, doc = gauges[key]
                yield GaugeMetricFamily(f"{P}_{name}", doc, value=number)
            elif ":" in key:  # persisted dropped_events:<sink>, dropped_records:<sink>
                what, _, sink = key.partition(":")
                family = per_sink.setdefault(
                    what,
                    CounterMetricFamily(
                        f"{P}_outbox_{_name(what)}", f"Outbox {what}.", labels=["sink"]
                    ),
                )
                family.add_metric([sink], number)
            else:
                yield CounterMetricFamily(
                    f"{P}_outbox_{_name(key)}", f"Outbox {key}.", value=number
                )
        yield from per_sink.values()

    def _labelled(
        self, label: str, section: dict[str, Any], gauges: frozenset[str]
    ) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for owner, fields in sorted(section.items()):
            for key, value in fields.items():
                number = _number(value)
                if number is None:
                    continue
                name = f"{P}_{label}_{_name(key)}"
                if name not in families:
                    kind = GaugeMetricFamily if key in gauges else CounterMetricFamily
                    families[name] = kind(name, f"Per-{label} {key}.", labels=[label])
                families[name].add_metric([owner], number)  # type: ignore[attr-defined]
        yield from families.values()

    def _sources(self, section: dict[str, Any]) -> Iterator[Metric]:
        plain = {port: {k: v for k, v in f.items() if k != "bad"} for port, f in section.items()}
        yield from self._labelled("source", plain, SOURCE_GAUGES)
        bad = CounterMetricFamily(
            f"{P}_source_bad_frames_by_reason",
            "Refused frames by reason.",
            labels=["source", "reason"],
        )
        for port, fields in sorted(section.items()):
            for reason, count in sorted((fields.get("bad") or {}).items()):
                bad.add_metric([port, reason], float(count))
        yield bad

    def _verify(self, section: dict[str, Any] | None) -> Iterator[Metric]:
        if not section:
            return
        for key in ("queue_depth", "queue_size", "worker_busy"):
            if (number := _number(section.get(key))) is not None:
                yield GaugeMetricFamily(f"{P}_verify_{key}", f"Verification {key}.", value=number)
        for q in ("p50", "p99"):
            if (number := _number(section.get(f"inference_us_{q}"))) is not None:
                yield GaugeMetricFamily(
                    f"{P}_verify_inference_{q}_seconds",
                    f"Inference time, {q} of the last 1,024 windows.",
                    value=number / 1e6,
                )


class MetricsServer:
    """``GET /metrics`` on ``host:port``; anything else is 404."""

    def __init__(self, collector: HealthCollector, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # the headers: nothing in them matters here
            parts = request.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                body = generate_latest(self.registry)
                head = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                )
            else:
                body, head = (
                    b"not found\n",
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n",
                )
            writer.write(
                head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass  # a scraper that went away or never spoke
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
