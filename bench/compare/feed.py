"""The same events for both gateways, each through the input it takes.

Ours: the protocol's frames (COBS + CRC-32) written into pseudo-terminals, one simulated
serial port per four nodes, ACKs read and discarded. The peer: one JSON message per event,
QoS 1, on a field broker its MQTT connector subscribes to (``nodes/<node>/event``) - its
MQTT connector, not its serial one: the serial connector reads a byte per call and tops out
below its MQTT path (docs/performance.md), so this is the input it handles best.

Every event carries the writer's monotonic clock in ms as ``uptime_ms``, which the counter
turns into latency. Sequence numbers go on from run to run of one stream.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt

from bench.bench_pipeline import drain, write_all
from gateway.protocol import encode, encode_frame
from gateway.protocol.constants import SCORE_SCALE
from gateway.sim.link import FdLink, open_pty
from gateway.sim.node import LABELS, expected_event

PORTS = 4
NODES_PER_PORT = 4
BASE_ID = 0xC000


def stamp_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


class Clocks:
    """Each device's clock: strictly increasing per device, as a sensor's event times are.

    A flood puts many events of one device into one millisecond of the writer's clock;
    real events of one sensor never share one, and a server keeps one value per (device,
    key, ts). Only the burst scenario stamps on purpose with one millisecond."""

    def __init__(self, now: Callable[[], int]) -> None:
        self._now = now
        self._last: dict[int, int] = {}

    def __call__(self, node: int) -> int:
        t = max(self._now(), self._last.get(node, -1) + 1)
        self._last[node] = t
        return t


@dataclass(frozen=True, slots=True)
class Ev:
    node: int
    seq: int


@dataclass
class Stream:
    """Round-robin over the nodes; each node's seq goes on where the last batch ended."""

    nodes: list[int] = field(
        default_factory=lambda: [BASE_ID + i for i in range(PORTS * NODES_PER_PORT)]
    )
    next_seq: dict[int, int] = field(default_factory=dict)

    def take(self, n: int, nodes: list[int] | None = None) -> list[Ev]:
        pick = nodes or self.nodes
        out = []
        for i in range(n):
            node = pick[i % len(pick)]
            seq = self.next_seq.get(node, 1)
            self.next_seq[node] = seq + 1
            out.append(Ev(node, seq))
        return out


def paced(events: list[Ev], rate: float | None, send: Callable[[list[Ev]], None]) -> None:
    """Calls ``send`` with the events due so far: all at once when ``rate`` is None."""
    if rate is None:
        send(events)
        return
    t0 = time.monotonic()
    done = 0
    while done < len(events):
        due = min(len(events), int((time.monotonic() - t0) * rate) + 1)
        if due > done:
            send(events[done:due])
            done = due
        time.sleep(max(0.0, t0 + done / rate - time.monotonic()))


class PtyFeeder:
    """Serial ports for our gateway: node n is on port (n - BASE_ID) // NODES_PER_PORT."""

    def __init__(self) -> None:
        self.links: list[FdLink] = [open_pty() for _ in range(PORTS)]
        self._stop = threading.Event()
        self._uptime = Clocks(stamp_ms)
        for link in self.links:
            threading.Thread(target=drain, args=(link.fd, self._stop), daemon=True).start()

    @property
    def paths(self) -> list[str]:
        return [link.path for link in self.links]

    def _frames(self, events: Iterable[Ev], stamp: int | None) -> dict[int, bytearray]:
        out: dict[int, bytearray] = {}
        for ev in events:
            port = (ev.node - BASE_ID) // NODES_PER_PORT % PORTS
            body = encode(
                expected_event(ev.node, ev.seq),
                node_id=ev.node,
                boot_id=1,
                seq=ev.seq,
                uptime_ms=self._uptime(ev.node) if stamp is None else stamp,
            )
            out.setdefault(port, bytearray()).extend(encode_frame(body))
        return out

    def send(self, events: list[Ev], rate: float | None = None, same_ms: bool = False) -> None:
        stamp = stamp_ms() if same_ms else None

        paced(events, rate, lambda batch: self._write(self._frames(batch, stamp)))

    def _write(self, frames: dict[int, bytearray]) -> None:
        for port, data in frames.items():
            write_all(self.links[port].fd, data)

    def flood(self, events: list[Ev]) -> float:
        """Writes ``events`` as fast as the ports take them, encoded beforehand (the writer's
        cost is not the gateway's); returns when the writing began."""
        # 256 events at a time: 16 KiB writes over the four ports, like a busy UART driver
        chunks = [self._frames(events[i : i + 256], None) for i in range(0, len(events), 256)]
        t0 = time.monotonic()
        for chunk in chunks:
            self._write(chunk)
        return t0

    def close(self) -> None:
        self._stop.set()
        for link in self.links:
            link.close()


def event_json(ev: Ev, stamp: int, ts: int) -> bytes:
    e = expected_event(ev.node, ev.seq)
    return json.dumps(
        {
            "node": f"{ev.node:016x}",
            "boot": 1,
            "seq": ev.seq,
            "label": LABELS[e.label],
            "label_index": e.label,
            "score": round(e.score / SCORE_SCALE, 5),
            "inference_us": e.inference_us,
            "uptime_ms": stamp,
            "ts": ts,
        },
        separators=(",", ":"),
    ).encode()


class MqttFeeder:
    """Devices publishing to the field broker the peer's MQTT connector reads."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"bench-devices-{os.getpid()}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._last: mqtt.MQTTMessageInfo | None = None
        self._uptime = Clocks(stamp_ms)
        self._ts = Clocks(lambda: time.time_ns() // 1_000_000)

    def _message(self, ev: Ev, fixed: tuple[int, int] | None) -> tuple[str, bytes]:
        stamp, ts = fixed or (self._uptime(ev.node), self._ts(ev.node))
        return f"nodes/{ev.node:016x}/event", event_json(ev, stamp, ts)

    def _publish(self, messages: Iterable[tuple[str, bytes]]) -> None:
        for topic, payload in messages:
            self._last = self.client.publish(topic, payload, qos=1)

    def _settle(self) -> None:
        if self._last is not None:
            self._last.wait_for_publish(120)  # the field broker has them all

    def send(self, events: list[Ev], rate: float | None = None, same_ms: bool = False) -> None:
        fixed = (stamp_ms(), time.time_ns() // 1_000_000) if same_ms else None
        paced(events, rate, lambda batch: self._publish(self._message(e, fixed) for e in batch))
        self._settle()

    def flood(self, events: list[Ev]) -> float:
        """Publishes ``events`` at once, their JSON made beforehand; returns when it began."""
        messages = [self._message(e, None) for e in events]
        t0 = time.monotonic()
        self._publish(messages)
        self._settle()
        return t0

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
