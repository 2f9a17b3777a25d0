"""ThingsBoard bridge figures, on this machine. Prints figures; asserts nothing.

    python bench/bench_thingsboard.py [--events 40000] [--backlog 100000]

Processes: the gateway (``python -m gateway run``, ThingsBoard sink only), Mosquitto,
and the test suite's ThingsBoard checker (tests/tb_checker.py) in its own process,
which validates every publish by the server's rules and counts distinct events.
Simulated nodes write pre-encoded frames into pseudo-terminals from threads.

Figures:
  throughput   events/s at the checker, batching on and off; publishes per event
  backlog      drain rate of a backlog stored while ThingsBoard was unreachable
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_pipeline import drain, start_gateway, writer  # noqa: E402
from gateway.sim.link import open_pty  # noqa: E402
from tests.peers import Mosquitto, free_port  # noqa: E402
from tests.tb_checker import ThingsBoardChecker  # noqa: E402


def checker_process(port: int, want: int, out: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        checker = ThingsBoardChecker("127.0.0.1", port)
        await checker.start()
        ready.set()
        first = last = 0.0
        count = 0
        while count < want:
            await asyncio.sleep(0.02)
            n = sum(
                sum(1 for _, v in d.telemetry if "label_index" in v)
                for d in checker.devices.values()
            )
            if n and not first:
                first = time.monotonic()
            if n > count:
                last = time.monotonic()
            count = n
        out.put(
            {
                "count": count,
                "seconds": last - first,
                "publishes": checker.telemetry_publishes,
                "violations": checker.violations[:3],
                "n_violations": len(checker.violations),
            }
        )
        await checker.stop()

    asyncio.run(main())


def _tb(port: int, **over: object) -> dict:
    return {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "access_token": "bench",
        "reconnect_max_s": 1.0,
        **over,
    }


def _write(links: list, per_node: int, nodes_per_port: int) -> list[threading.Thread]:
    stop = threading.Event()
    threads = []
    for i, link in enumerate(links):
        nodes = [0xC000 + i * 1000 + n for n in range(nodes_per_port)]
        threads.append(threading.Thread(target=writer, args=(link.fd, nodes, per_node, None, stop)))
        threads.append(threading.Thread(target=drain, args=(link.fd, stop), daemon=True))
    for t in threads:
        t.start()
    return threads


def _stop(chk: mp.Process, proc: subprocess.Popen[bytes], links: list, broker: Mosquitto) -> None:
    chk.join(10)
    proc.terminate()
    proc.wait(30)
    for lk in links:
        lk.close()
    broker.stop()


def throughput(tmp: Path, events: int, *, batching: bool) -> dict:
    events -= events % 16  # 4 ports x 4 nodes, the same count each
    broker = Mosquitto(tmp)
    broker.start()
    links = [open_pty() for _ in range(4)]
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    ready = mp.Event()
    chk = mp.Process(target=checker_process, args=(broker.port, events, out, ready))
    chk.start()
    ready.wait(30)
    proc, _ = start_gateway(
        tmp,
        broker,
        [lk.path for lk in links],
        mqtt={"enabled": False},
        thingsboard=_tb(broker.port, batching=batching, publish_budget=""),
    )
    _write(links, events // 16, 4)
    result = out.get(timeout=900)
    _stop(chk, proc, links, broker)
    return result


def backlog(tmp: Path, events: int) -> tuple[dict, float]:
    events -= events % 16
    port = free_port()
    links = [open_pty() for _ in range(4)]
    broker = Mosquitto(tmp, port=port)
    # ThingsBoard is unreachable while the events are stored
    proc, _ = start_gateway(
        tmp,
        broker,
        [lk.path for lk in links],
        mqtt={"enabled": False},
        thingsboard=_tb(port),
    )
    t0 = time.monotonic()
    for t in _write(links, events // 16, 4):
        if t.daemon is False:
            t.join()
    db = sqlite3.connect(f"file:{tmp / 'data' / 'outbox.sqlite3'}?mode=ro", uri=True)
    stored = 0
    while stored < events and time.monotonic() - t0 < 600:
        time.sleep(0.5)
        stored = db.execute("SELECT count(*) FROM records WHERE kind = 1").fetchone()[0]
    db.close()
    broker.start()
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    ready = mp.Event()
    chk = mp.Process(target=checker_process, args=(port, stored, out, ready))
    chk.start()
    result = out.get(timeout=900)
    _stop(chk, proc, links, broker)
    return result, stored


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--backlog", type=int, default=100_000)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    for batching in (True, False):
        n = args.events if batching else args.events // 4
        with tempfile.TemporaryDirectory() as d:
            r = throughput(Path(d), n, batching=batching)
        print(
            f"throughput  batching {'on ' if batching else 'off'} {r['count'] / r['seconds']:9,.0f} "
            f"events/s at the checker ({r['count']} events, "
            f"{r['publishes'] / r['count']:.3f} telemetry publishes per event, "
            f"{r['n_violations']} violations)"
        )
    with tempfile.TemporaryDirectory() as d:
        r, stored = backlog(Path(d), args.backlog)
    print(
        f"backlog     {r['count'] / r['seconds']:9,.0f} events/s draining {stored:,} stored events "
        f"(default publish budget 200:1; {r['publishes']:,} telemetry publishes, "
        f"{r['n_violations']} violations)"
    )


if __name__ == "__main__":
    main()
