"""``tinyml-gateway demo``: the whole pipeline on one machine, no hardware, no server.

Simulated nodes speak the real protocol on pseudo-terminals; the gateway reads
them through its serial source, stores events in its outbox and publishes them
to an MQTT broker (an embedded one unless ``--broker`` names one). A live view
subscribes like Node-RED would and shows what arrives; every 20 s it sends a
``ping`` command to a node through the cmd topic and shows the answer.

Where the ``verify`` extra is installed, the nodes send their feature windows (real
BasicMotions data, a few with a sensor fault or a wrong label) and the gateway
re-runs the shipped model on each: the view shows where it disagrees.

With ``--ble`` one more node talks BLE: an emulated BlueZ on a private D-Bus
(gateway/sim/bluez_rig.py) carries it to the gateway's BLE source through bleak.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.config import Config, parse_config, verify_runtime_found
from gateway.errors import GatewayError, MissingExtraError
from gateway.logs import setup_logging
from gateway.model import node_hex
from gateway.service import Gateway, build, install_signals, serve
from gateway.sim.dataset import dataset
from gateway.sim.link import FdLink, NodeRunner, open_pty
from gateway.sim.node import SimulatedNode

log = logging.getLogger("gateway.demo")

GATEWAY_ID = "demo"
PREFIX = "tinyml"
NAMES = ("press-1", "press-2", "pump-a", "fan-3", "lathe-7", "mixer-2", "conveyor", "drill-9")


@dataclass
class NodeView:
    name: str = ""
    online: bool | None = None
    events: int = 0
    label: str = ""
    score: float = 0.0
    battery_mv: int | None = None
    last_seq: int = 0
    verdict: str = "-"
    disagreements: int = 0


@dataclass
class View:
    nodes: dict[str, NodeView] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    keys: set[str] = field(default_factory=set)
    last_command: str = "(none yet)"
    # set once the view subscribes: aiomqtt leaves a client cancelled in the middle of its
    # connect with its socket registered, and that socket's close later raises inside the
    # event loop, so Ctrl-C is offered only once the view is connected
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    gateway_online: bool | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _start_broker(port: int) -> Any:
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise MissingExtraError("the demo's embedded MQTT broker", "demo") from None
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    return broker


BLE_NODE_ID = 0xA1B2C3D4E5F6B1E0


def _config(
    data_dir: Path,
    host: str,
    port: int,
    protocol: str,
    links: list[FdLink],
    nodes: list[SimulatedNode],
    ble: bool,
) -> Config:
    verify = _verify_section()
    return parse_config(
        {
            "verify": verify or {},
            "gateway": {"id": GATEWAY_ID, "data_dir": str(data_dir)},
            "serial": [{"path": link.path} for link in links],
            "ble": {"enabled": ble, "backoff_max_s": 5.0},
            "nodes": {
                node_hex(n.node_id): {"name": NAMES[i % len(NAMES)], "group": "hall-a"}
                for i, n in enumerate(nodes)
            },
            "mqtt": {"host": host, "port": port, "protocol": protocol, "topic_prefix": PREFIX},
            "health": {"interval_s": 5},
        }
    )


def _verify_section() -> dict[str, Any] | None:
    """The demo verifies events where the verify extra's runtime is installed."""
    if not verify_runtime_found():
        return None
    model = resources.files("gateway.models.basicmotions").joinpath("model.tflite")
    return {
        "enabled": True,
        "models": [{"file": str(model), "sha256": dataset().sha256.hex(), "policy": "flag"}],
    }


async def _watch(
    host: str, port: int, protocol: str, view: View, nodes: list[SimulatedNode]
) -> None:
    base = f"{PREFIX}/{GATEWAY_ID}"
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    while True:
        try:
            async with aiomqtt.Client(
                host, port, identifier="tinyml-demo-view", protocol=version
            ) as client:
                await client.subscribe(f"{base}/#", qos=1)
                view.subscribed.set()
                pinger = asyncio.create_task(_ping(client, base, nodes))
                try:
                    async for msg in client.messages:
                        _update(view, str(msg.topic), msg.payload)
                finally:
                    pinger.cancel()
        except aiomqtt.MqttError:
            await asyncio.sleep(1)


async def _ping(client: aiomqtt.Client, base: str, nodes: list[SimulatedNode]) -> None:
    i = 0
    while True:
        await asyncio.sleep(20 if i else 5)
        node = nodes[i % len(nodes)]
        cmd = {"id": i + 1, "method": "ping"}
        await client.publish(f"{base}/{node_hex(node.node_id)}/cmd", json.dumps(cmd), qos=1)
        i += 1


def _update(view: View, topic: str, payload: Any) -> None:
    parts = topic.split("/")
    try:
        data = json.loads(payload)
    except (ValueError, TypeError):
        return
    if len(parts) == 3 and parts[2] == "status":
        view.gateway_online = bool(data.get("online"))
        return
    if len(parts) < 4:
        return
    node, kind = parts[2], "/".join(parts[3:])
    view.kinds[kind] += 1
    nv = view.nodes.setdefault(node, NodeView())
    nv.name = data.get("name") or nv.name
    if kind == "event":
        nv.events += 1
        nv.label = str(data.get("label"))
        nv.score = float(data.get("score", 0))
        nv.last_seq = int(data.get("seq", 0))
        view.keys.add(str(data.get("key")))
        if data.get("verified"):
            agrees = bool(data.get("agreement"))
            nv.verdict = "agrees" if agrees else f"says {data.get('gateway_label')}"
            nv.disagreements += not agrees
        elif "verified" in data:
            nv.verdict = f"unverified ({data.get('unverified_reason')})"
    elif kind == "heartbeat":
        nv.battery_mv = data.get("battery_mv")
    elif kind == "status":
        nv.online = bool(data.get("online"))
    elif kind == "cmd/ack":
        view.last_command = f"{node} -> {data.get('status')} (id {data.get('id')})"


class _Stdout:
    """Standard output that a closed pipe does not turn into an error.

    ``demo | head`` closes it early, and Ctrl-C on ``demo | tee demo.log`` ends
    tee too, before the demo prints its last summary.
    """

    def __init__(self) -> None:
        self.gone = False

    def say(self, text: str) -> None:
        if self.gone:
            return
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            self.gone = True
            # the interpreter flushes stdout once more at exit: let that go nowhere
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def _intro(broker: str) -> list[str]:
    """What the demo is and where to point Node-RED: the same in both modes."""
    return [
        "tinyml-gateway demo: simulated TinyML nodes -> serial (pty) -> gateway -> outbox -> MQTT",
        f"broker  mqtt://{broker}   topics "
        f"{PREFIX}/{GATEWAY_ID}/<node>/event|heartbeat|info|status",
        f"Node-RED: 'mqtt in' node, server {broker}, topic {PREFIX}/{GATEWAY_ID}/+/event, "
        "output: parsed JSON",
    ]


def _render(view: View, gw: Gateway, broker: str, started: float, runners: list[NodeRunner]) -> str:
    lines = [
        *_intro(broker),
        f"running {time.monotonic() - started:.0f} s",
        "",
        f"{'node':18} {'name':10} {'status':8} {'events':>7} {'last label':10} {'score':>6} "
        f"{'battery':>8}  {'gateway check':18} {'disagreed':>9}",
    ]
    for node_id, nv in sorted(view.nodes.items()):
        status = {None: "?", True: "online", False: "offline"}[nv.online]
        batt = f"{nv.battery_mv} mV" if nv.battery_mv else "-"
        lines.append(
            f"{node_id:18} {nv.name:10} {status:8} {nv.events:7d} {nv.label:10} "
            f"{nv.score:6.3f} {batt:>8}  {nv.verdict:18} {nv.disagreements:9d}"
        )
    lines += ["", _summary(view, gw, runners), "Ctrl-C to stop."]
    return "\n".join(lines)


def _summary(view: View, gw: Gateway, runners: list[NodeRunner]) -> str:
    c = gw.health.counters
    sent = sum(r.stats.events for r in runners)
    resent = sum(r.stats.resends for r in runners)
    return (
        f"nodes sent {sent} events ({resent} resends); gateway committed {c['events']}, "
        f"dropped {c['duplicates']} duplicates; subscriber got {len(view.keys)} distinct events\n"
        f"outbox {gw.outbox.stats.used_bytes / 1024:.0f} KiB; ACKs to nodes {c['acks_sent']}; "
        f"last command: {view.last_command}\n"
        + (
            f"verification: {c['events_verified']} events checked by the gateway's model, "
            f"{c['events_disagreeing']} disagreed with their node (faulty windows or labels)"
            if gw.verification is not None
            else "verification: off (install the verify extra: scripts/setup.sh demo)"
        )
    )


async def _demo(args: argparse.Namespace) -> None:
    """Runs the demo; a data folder it made itself is removed however it ends."""
    temporary = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="tinyml-demo-"))
    try:
        await _demo_in(args, data_dir, _Stdout())
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _demo_in(args: argparse.Namespace, data_dir: Path, out: _Stdout) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            host, _, port_text = args.broker.rpartition(":")
            host, port, protocol = host or "127.0.0.1", int(port_text), "5"
        else:
            port = args.port or _free_port()
            if not _port_free(port):
                port = _free_port()
            host, protocol = "127.0.0.1", "3.1.1"  # the embedded broker speaks 3.1.1 only
            stack.push_async_callback(_stop_broker, await _start_broker(port))
        nodes = _serial_nodes(args.nodes)
        links = [open_pty() for _ in range(min(2, len(nodes)))]
        for link in links:
            stack.callback(link.close)
        runners: list[NodeRunner] = [
            NodeRunner(link, nodes[i :: len(links)], rate_hz=args.rate)
            for i, link in enumerate(links)
        ]
        if args.ble:
            runners.append(await _ble_node(stack, args.rate))
            nodes.append(runners[-1].nodes[BLE_NODE_ID])
        gw = await build(_config(data_dir, host, port, protocol, links, nodes, args.ble))
        stack.callback(install_signals(gw))
        view = View()
        stack.callback(lambda: out.say(_summary(view, gw, runners)))
        started = time.monotonic()
        tasks = [
            asyncio.create_task(serve(gw)),
            *(asyncio.create_task(r.run()) for r in runners),
            asyncio.create_task(_watch(host, port, protocol, view, nodes)),
        ]
        live = sys.stdout.isatty() and not args.plain
        with contextlib.suppress(TimeoutError):  # the view shows it if it never connects
            await asyncio.wait_for(view.subscribed.wait(), 30)
        if not live:
            out.say("\n".join([*_intro(f"{host}:{port}"), "Ctrl-C to stop."]))
        try:
            deadline = None if args.duration is None else started + args.duration
            while not gw.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                await asyncio.sleep(1.0 if live else 5.0)
                if live:
                    screen = _render(view, gw, f"{host}:{port}", started, runners)
                    out.say("\x1b[H\x1b[2J" + screen)
                else:
                    out.say(_summary(view, gw, runners))
                if out.gone:  # nobody is reading any more
                    break
        finally:
            gw.stop.set()
            await tasks[0]
            for t in tasks[1:]:
                t.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)


def _serial_nodes(count: int) -> list[SimulatedNode]:
    # with verification, nodes send their windows, and a few carry a fault
    faults: dict[str, Any] = {}
    if verify_runtime_found():
        faults = {"window": True, "corrupt_permille": 30, "wrong_permille": 20}
    return [
        SimulatedNode(0xA1B2C3D4E5F60000 + i, boot_id=1, heartbeat_period_s=5, **faults)
        for i in range(count)
    ]


async def _ble_node(stack: contextlib.AsyncExitStack, rate_hz: float) -> NodeRunner:
    """The rig, and one emulated BLE node on it (the ``demo-ble`` setup installs both)."""
    for module, extra in (("bleak", "ble"), ("bluezoo", "blerig")):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("demo --ble", extra)
    from gateway.sim.ble_node import BleNodeLink
    from gateway.sim.bluez_rig import BluezRig, RigError

    try:
        stack.enter_context(BluezRig(nodes=1))
    except RigError as exc:
        raise GatewayError(f"demo --ble: {exc}: run scripts/setup.sh demo-ble") from None
    # the emulated BlueZ has no bluetoothctl to ask its version, and it stops before this
    # process ends: bleak would warn of both
    logging.getLogger("bleak.backends.bluezdbus.version").setLevel(logging.ERROR)
    quiet = logging.getLogger("bleak.backends.bluezdbus.manager")
    stack.callback(quiet.setLevel, logging.ERROR)
    link = BleNodeLink(BluezRig.node_adapter(0), name="ble-sensor")
    await link.start()
    stack.push_async_callback(link.stop)
    node = SimulatedNode(BLE_NODE_ID, boot_id=1, heartbeat_period_s=5)
    return NodeRunner(link, [node], rate_hz=rate_hz)


async def _stop_broker(broker: Any) -> None:
    with contextlib.suppress(Exception):  # amqtt's own shutdown errors are not the demo's
        await broker.shutdown()


def run_demo(args: argparse.Namespace) -> int:
    live = sys.stdout.isatty() and not args.plain
    setup_logging("warning" if live else "info")
    try:
        asyncio.run(_demo(args))
    except GatewayError as exc:  # a missing extra, or the BLE rig cannot start
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
