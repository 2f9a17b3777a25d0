"""The scenarios, each run on a fresh process of one subject with the same inputs.

Every scenario returns plain figures (JSON-able); none asserts anything. Sizes come from
``Sizes`` (full or ``--quick``).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.compare.counter import CounterProcess
from bench.compare.feed import Ev, Stream
from bench.compare.proxy import Proxy


@dataclass(frozen=True)
class Sizes:
    flood_ours: int
    flood_peer: int
    rate: float  # the latency and CPU scenario, events/s
    rate_s: float
    idle_s: float
    outage_rate: float
    outage_pre_s: float
    outage_s: float
    outage_post_s: float
    backlog: int
    burst: int
    quiet_s: float  # no new event at the counter for this long: delivery has ended

    @staticmethod
    def full() -> Sizes:
        # floods of about 4 s each on 2 cores: long enough to be sustained, for both
        return Sizes(90_000, 8_000, 500, 10, 3, 200, 5, 20, 5, 1_000, 2_000, 10)

    @staticmethod
    def quick() -> Sizes:
        return Sizes(600, 300, 500, 2, 1, 200, 1, 3, 1, 200, 400, 3)


@dataclass
class Bench:
    counter: CounterProcess
    proxy: Proxy
    sizes: Sizes
    stream: Stream


Subject = Any  # subjects.Ours or subjects.Peer


def _warm(bench: Bench, subject: Subject) -> float:
    """Starts the subject and waits until one event of every node arrived: connected."""
    bench.counter.reset()
    t0 = subject.start()
    deadline = time.monotonic() + 120
    while True:
        subject.feeder.send(bench.stream.take(len(bench.stream.nodes)), rate=200)
        snap = bench.counter.wait_settled(len(bench.stream.nodes), quiet_s=1.0, limit_s=2.0)
        if snap["events"] >= len(bench.stream.nodes) // 2:
            break
        if time.monotonic() > deadline or subject.proc.poll() is not None:
            raise RuntimeError(f"{subject.name} delivered nothing: see {subject.workdir}")
    time.sleep(0.5)
    bench.counter.reset()
    return t0


def _lost(sent: list[Ev], snap: dict[str, Any]) -> int:
    return max(0, len(sent) - snap["events"])


def _background(fn: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def throughput(bench: Bench, subject: Subject, n: int) -> dict[str, Any]:
    """A flood of ``n`` events, more than the subject can take at once (the rest waits in
    the pty or the field broker): its delivery rate is its sustained maximum.

    The rate runs from the start of the flood, not from the first arrival: a gateway that
    stores a batch and forwards it in one go must not look fast for it."""
    _warm(bench, subject)
    events = bench.stream.take(n)
    a = subject.proc_figures()
    t0 = subject.feeder.flood(events)
    snap = bench.counter.wait_settled(n, bench.sizes.quiet_s, 600)
    span = (snap["last_s"] or t0) - t0
    b = subject.proc_figures()  # whether the gateway had a core to itself, or wanted more
    subject.stop()
    return {
        "sent": n,
        "events": snap["events"],
        "lost": _lost(events, snap),
        "duplicates": snap["duplicates"],
        "events_per_s": snap["events"] / span if span > 0 else None,
        "publishes_per_event": snap["publishes"] / max(1, snap["events"]),
        "cpu_ms_per_1000": 1e6 * (b["cpu_s"] - a["cpu_s"]) / max(1, snap["events"]),
        "violations": snap["violations"],
    }


def steady(bench: Bench, subject: Subject) -> dict[str, Any]:
    """Idle memory, then ``rate`` events/s: latency, memory, threads and CPU under load."""
    sz = bench.sizes
    _warm(bench, subject)
    time.sleep(sz.idle_s)
    idle = subject.proc_figures()
    events = bench.stream.take(int(sz.rate * sz.rate_s))
    peak = {"rss_mb": 0.0, "threads": 0}
    t0, a = time.monotonic(), subject.proc_figures()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            f = subject.proc_figures()
            peak["rss_mb"] = max(peak["rss_mb"], f["rss_mb"])
            peak["threads"] = max(peak["threads"], f["threads"])

    sampler = _background(sample)
    subject.feeder.send(events, rate=sz.rate)
    b, t1 = subject.proc_figures(), time.monotonic()
    done.set()
    sampler.join()
    snap = bench.counter.wait_settled(len(events), sz.quiet_s, 60)
    lat = sorted(bench.counter.snapshot(latencies=True)["latency_ms"])
    subject.stop()
    return {
        "rate": sz.rate,
        "sent": len(events),
        "events": snap["events"],
        "lost": _lost(events, snap),
        "p50_ms": lat[len(lat) // 2] if lat else None,
        "p99_ms": lat[max(0, int(len(lat) * 0.99) - 1)] if lat else None,
        "rss_idle_mb": idle["rss_mb"],
        "threads_idle": idle["threads"],
        "rss_load_mb": max(peak["rss_mb"], b["rss_mb"]),
        "threads_load": max(peak["threads"], b["threads"]),
        "cpu_pct": 100 * (b["cpu_s"] - a["cpu_s"]) / (t1 - t0),
    }


def _key(e: Ev) -> tuple[str, int]:
    return (f"{e.node:016x}", e.seq)


def startup(bench: Bench, subject: Subject) -> dict[str, Any]:
    """Exec to the first event at the counter, with events offered from before the exec.

    Only the events offered here count: anything else at the counter (a straggler of an
    earlier process) is reported as ``strays``, not taken for this start."""
    # no warm-up here to wait behind: let what the last process sent reach the counter first
    bench.counter.wait_settled(1 << 30, quiet_s=0.5, limit_s=10)
    bench.counter.reset()
    stop = threading.Event()
    offered: set[tuple[str, int]] = set()

    def offer() -> None:
        while not stop.is_set():
            batch = bench.stream.take(20)
            offered.update(_key(e) for e in batch)
            subject.feeder.send(batch, rate=200)

    feeder = _background(offer)
    t0 = subject.start()
    deadline = t0 + 120
    first, arrivals = None, []
    while time.monotonic() < deadline:
        arrivals = bench.counter.snapshot(arrivals=True)["arrivals"]
        mine = [t for d, _, q, t in arrivals if (d, q) in offered]
        if mine:
            first = min(mine)
            break
        time.sleep(0.01)
    strays = [(d, q) for d, _, q, _ in arrivals if (d, q) not in offered]
    stop.set()
    feeder.join()
    subject.stop()
    return {
        "first_event_s": None if first is None else first - t0,
        "strays": len(strays),
        "stray_examples": strays[:5],
    }


def outage(bench: Bench, subject: Subject) -> dict[str, Any]:
    """``outage_s`` without the server at ``outage_rate`` events/s: what is lost, sent
    twice, and how long after the server is back the events of the outage are delivered."""
    sz = bench.sizes
    _warm(bench, subject)
    r = sz.outage_rate
    before = bench.stream.take(int(r * sz.outage_pre_s))
    during = bench.stream.take(int(r * sz.outage_s))
    after = bench.stream.take(int(r * sz.outage_post_s))
    subject.feeder.send(before, rate=r)
    bench.proxy.down()
    subject.feeder.send(during, rate=r)
    bench.proxy.up()
    t_up = time.monotonic()
    subject.feeder.send(after, rate=r)
    sent = before + during + after
    snap = bench.counter.wait_settled(len(sent), sz.quiet_s, 180)
    arrivals = bench.counter.snapshot(arrivals=True)["arrivals"]
    outage_keys = {_key(e) for e in during}
    times = [t for d, _, q, t in arrivals if (d, q) in outage_keys]
    drained = len(times) == len(during)
    subject.stop()
    return {
        "rate": r,
        "outage_s": sz.outage_s,
        "sent": len(sent),
        "events": snap["events"],
        "lost": _lost(sent, snap),
        "lost_of_outage": len(during) - len(times),
        "duplicates": snap["duplicates"],
        "drain_s": max(times) - t_up if drained and times else None,
    }


def kill(bench: Bench, subject: Subject, sig: signal.Signals) -> dict[str, Any]:
    """``backlog`` events buffered while the server is away, then ``sig``, a restart with
    the server back: what arrives."""
    sz = bench.sizes
    _warm(bench, subject)
    bench.proxy.down()
    events = bench.stream.take(sz.backlog)
    subject.feeder.send(events, rate=500)
    buffered = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the subject has read them all
        buffered = subject.buffered()
        if buffered is None:
            # nothing tells: give it the time 1,000 take at 2,000/s, three times over
            time.sleep(max(1.0, 3.0 * len(events) / 1000))
            break
        if buffered >= len(events):
            break
        time.sleep(0.1)
    how = subject.stop(sig)
    bench.proxy.up()
    subject.start()
    snap = bench.counter.wait_settled(len(events), sz.quiet_s, 120)
    subject.stop()
    return {
        "signal": sig.name,
        "backlog": len(events),
        "buffered_seen": buffered,
        "ended": how,
        "events": snap["events"],
        "lost": _lost(events, snap),
        "duplicates": snap["duplicates"],
    }


def burst(bench: Bench, subject: Subject) -> dict[str, Any]:
    """``burst`` events of 4 devices stamped with one millisecond: how many stay distinct
    points on a server that keeps one value per (device, key, ts)."""
    sz = bench.sizes
    _warm(bench, subject)
    nodes = bench.stream.nodes[: 4 * 4 : 4]  # 4 devices, one per serial port
    events = bench.stream.take(sz.burst, nodes)
    subject.feeder.send(events, same_ms=True)
    snap = bench.counter.wait_settled(len(events), sz.quiet_s, 120)
    subject.stop()
    return {
        "sent": len(events),
        "devices": len(nodes),
        "events": snap["events"],
        "points": snap["points"],
        "lost": _lost(events, snap),
        "points_lost": len(events) - snap["points"],
    }
