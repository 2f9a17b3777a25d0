"""A simulated TinyML node: the protocol behaviour of the reference firmware, in Python.

It numbers its EVENTs per boot, keeps them in a retransmit ring until the
gateway's cumulative ACK covers them, resends after a timeout, reports its
ring floor in heartbeats, and answers commands. Event contents are a pure
function of (node, seq) (:func:`expected_event`), so a test can prove that
nothing arriving downstream was altered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.protocol import (
    Ack,
    Capability,
    Command,
    CommandAck,
    CommandCode,
    Event,
    Heartbeat,
    Info,
    Message,
    Status,
    encode,
)
from gateway.protocol.commands import BY_CODE
from gateway.sim.dataset import dataset

_DATA = dataset()
LABELS = _DATA.labels
MODEL_NAME = _DATA.name
MODEL_SHA256 = _DATA.sha256
MODEL_ID = _DATA.model_id


class Fault(StrEnum):
    """What a simulated node gets wrong, on purpose (the demo's and tests' disagreements)."""

    CORRUPTED = "corrupted"  # the window sent has a sensor fault; the label is the good one's
    WRONG_LABEL = "wrong_label"  # the window is right; the label is not what the model said


def _mix(node_id: int, seq: int) -> int:
    return (node_id * 0x9E3779B97F4A7C15 + seq * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF


def fault_of(node_id: int, seq: int, corrupt_permille: int, wrong_permille: int) -> Fault | None:
    """Which fault, if any, EVENT ``seq`` of a node carries: a pure function, so a test
    knows exactly which events the gateway must flag."""
    draw = (_mix(node_id, seq) >> 24) % 1000
    if draw < corrupt_permille:
        return Fault.CORRUPTED
    if draw < corrupt_permille + wrong_permille:
        return Fault.WRONG_LABEL
    return None


def window_index(node_id: int, seq: int) -> int:
    """Which held-out window EVENT ``seq`` of a node is made from."""
    return _mix(node_id, seq) % len(_DATA.held_out)


def expected_event(
    node_id: int,
    seq: int,
    *,
    window: bool = False,
    corrupt_permille: int = 0,
    wrong_permille: int = 0,
) -> Event:
    """The EVENT a simulated node sends as number ``seq``: deterministic, so checkable.

    Its result is TFLM's on one of the shipped model's held-out windows
    (gateway/sim/dataset.py); with a fault, the window or the label is wrong.
    """
    h = _mix(node_id, seq)
    i = window_index(node_id, seq)
    good = _DATA.held_out[i]
    fault = fault_of(node_id, seq, corrupt_permille, wrong_permille)
    label, score, scores = good.label, good.score, good.scores
    sent = good.window
    if fault is Fault.CORRUPTED:
        sent = _DATA.corrupted[i].window
    elif fault is Fault.WRONG_LABEL:
        label = (label + 1 + (h >> 40) % (len(LABELS) - 1)) % len(LABELS)
        score = scores[label]
    return Event(MODEL_ID, label, score, 800 + h % 2000, scores, sent if window else None)


@dataclass(slots=True)
class _Pending:
    seq: int
    sent_at_ms: int
    raw: bytes


@dataclass(slots=True)
class SimulatedNode:
    node_id: int
    boot_id: int = 1
    key: bytes | None = None
    heartbeat_period_s: int = 10
    sample_rate_hz: int = 100
    threshold: int = 45000
    ring_size: int = 64
    retx_timeout_ms: int = 2000
    window: bool = False
    corrupt_permille: int = 0  # events whose window has a sensor fault, per thousand
    wrong_permille: int = 0  # events whose label is not the model's, per thousand
    seq: int = 0  # last EVENT number sent this boot
    ring: deque[_Pending] = field(default_factory=deque)
    dropped: int = 0
    inferences: int = 0
    rx_errors: int = 0
    last_downlink_seq: int = 0
    reboots: int = 0

    def _encode(
        self, body: Info | Event | Heartbeat | CommandAck, uptime_ms: int, seq: int
    ) -> bytes:
        return encode(
            body,
            node_id=self.node_id,
            boot_id=self.boot_id,
            seq=seq,
            uptime_ms=uptime_ms & 0xFFFFFFFF,
            key=self.key,
        )

    def info(self, uptime_ms: int) -> bytes:
        caps = Capability.DOWNLINK | (Capability.WINDOW if self.window else 0)
        caps |= Capability.AUTH if self.key else 0
        body = Info(
            1,
            int(caps),
            self.heartbeat_period_s,
            self.sample_rate_hz,
            self.threshold,
            MODEL_SHA256,
            "sim-1.0.0",
            MODEL_NAME,
            LABELS,
        )
        return self._encode(body, uptime_ms, self.seq)

    def event(self, uptime_ms: int) -> bytes:
        """A new EVENT, kept in the ring until acknowledged."""
        self.seq += 1
        self.inferences += 1
        raw = self._encode(
            expected_event(
                self.node_id,
                self.seq,
                window=self.window,
                corrupt_permille=self.corrupt_permille,
                wrong_permille=self.wrong_permille,
            ),
            uptime_ms,
            self.seq,
        )
        if len(self.ring) >= self.ring_size:
            self.ring.popleft()
            self.dropped += 1
        self.ring.append(_Pending(self.seq, uptime_ms, raw))
        return raw

    def heartbeat(self, uptime_ms: int) -> bytes:
        floor = self.ring[0].seq if self.ring else self.seq + 1
        body = Heartbeat(
            3000 - self.seq % 300,
            2150 + self.seq % 100,
            self.inferences,
            self.dropped,
            floor,
            self.rx_errors,
        )
        return self._encode(body, uptime_ms, self.seq)

    def due(self, uptime_ms: int) -> list[bytes]:
        """EVENTs unacknowledged for longer than the resend timeout (stamped as resent)."""
        out = []
        for p in self.ring:
            if uptime_ms - p.sent_at_ms >= self.retx_timeout_ms:
                p.sent_at_ms = uptime_ms
                out.append(p.raw)
        return out

    def on_downlink(self, msg: Message, uptime_ms: int) -> list[bytes]:
        """Handles an ACK or COMMAND; returns the messages to send in answer."""
        h = msg.header
        if h.node_id != self.node_id:
            return []
        body = msg.body
        if isinstance(body, Ack):
            if body.boot_id == self.boot_id:
                while self.ring and self.ring[0].seq <= body.seq:
                    self.ring.popleft()
            return []
        if not isinstance(body, Command):
            return []
        return self._command(body, uptime_ms)

    def _command(self, cmd: Command, uptime_ms: int) -> list[bytes]:
        status = Status.OK
        extra: list[bytes] = []
        spec = BY_CODE.get(cmd.command)
        value = None if spec is None else spec.decode(cmd.args)
        if spec is None:
            status = Status.UNKNOWN_COMMAND
        elif value is None:  # arguments of the wrong size, or out of range
            status = Status.BAD_ARGUMENT
        elif spec.code == CommandCode.SET_THRESHOLD:
            self.threshold = value
        elif spec.code == CommandCode.SET_SAMPLE_RATE:
            self.sample_rate_hz = value
        elif spec.code == CommandCode.SET_HEARTBEAT_PERIOD:
            self.heartbeat_period_s = value
        elif spec.code == CommandCode.GET_INFO:
            extra.append(self.info(uptime_ms + 1))
        elif spec.code == CommandCode.REBOOT:
            self.reboots += 1
        ack = self._encode(CommandAck(cmd.request_id, cmd.command, status), uptime_ms, self.seq)
        return [ack, *extra]
