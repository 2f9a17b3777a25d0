"""The Prometheus endpoint, scraped over HTTP while the gateway runs: names, labels and
values match the health payload (docs/metrics.md)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from gateway.model import node_hex
from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from tests.peers import Mosquitto, config_data, free_port, gateway_config, running, toml_text

ROOT = Path(__file__).resolve().parent.parent


async def get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_a_scrape_matches_the_health_payload(
    tmp_path: Path, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    node = SimulatedNode(0xB100)
    port = free_port()
    cfg = gateway_config(tmp_path, mosquitto, [link.path], metrics={"enabled": True, "port": port})
    async with running(cfg) as gw:
        await asyncio.wait_for(
            NodeRunner(link, [node], rate_hz=50, count=30).run(until_acked=True), 60
        )
        while gw.sinks[0].health()["delivered"] < 30:  # every event published
            await asyncio.sleep(0.05)
        status, body = await get(port, "/metrics")
        h = gw.health.payload()
        assert status == "HTTP/1.1 200 OK"
        m = samples(body)
        for key, value in h["counters"].items():
            assert m[(f"tinyml_gateway_{key}_total", ())] == value, key
        assert h["counters"]["events"] == 30
        assert m[("tinyml_gateway_nodes_online", ())] == h["nodes"]["online"] == 1
        assert m[("tinyml_gateway_node_online", (("node", node_hex(0xB100)),))] == 1
        mqtt = h["sinks"]["mqtt"]
        assert m[("tinyml_gateway_sink_connected", (("sink", "mqtt"),))] == 1
        assert m[("tinyml_gateway_sink_delivered_total", (("sink", "mqtt"),))] == mqtt["delivered"]
        src = h["sources"][link.path]
        label = (("source", link.path),)
        assert m[("tinyml_gateway_source_bytes_in_total", label)] == src["bytes_in"]
        assert m[("tinyml_gateway_source_frames_total", label)] == src["frames"]
        assert m[("tinyml_gateway_source_open", label)] == 1
        assert m[("tinyml_gateway_outbox_used_bytes", ())] == h["outbox"]["used_bytes"]
        assert m[("tinyml_gateway_uptime_seconds", ())] > 0
        info = [k for k in m if k[0] == "tinyml_gateway_info"]
        assert info and ("gateway", "gw") in info[0][1]
        status, _ = await get(port, "/other")
        assert status == "HTTP/1.1 404 Not Found"


async def test_off_by_default_and_on_localhost(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = gateway_config(tmp_path, mosquitto, [])
    assert cfg.metrics.enabled is False and cfg.metrics.host == "127.0.0.1"
    async with running(cfg) as gw:
        assert gw.metrics is None


def test_a_port_in_use_stops_the_start_naming_the_field(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = config_data(tmp_path, None, [], mqtt={"enabled": False})
        data["metrics"] = {"enabled": True, "port": port}
        config = tmp_path / "gateway.toml"
        config.write_text(toml_text(data))
        r = subprocess.run(
            [sys.executable, "-m", "gateway", "run", "-c", str(config)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 78, r.stderr
    assert "metrics.port" in r.stderr and "Traceback" not in r.stderr
