"""What a busy event loop costs a thread that talks to SQLite. Prints figures; asserts nothing.

    python bench/bench_sqlite_gil.py [--rows 2000]

The outbox runs SQLite on a worker thread (gateway/outbox.py). The sqlite3 module lets go
of the GIL for every step of a statement and takes it back afterwards; beside a thread
that keeps the GIL busy (the event loop at full speed) each take-back waits for a switch
interval. This measures, alone and beside a busy thread, in ms per batch (best of 3):

  executemany   one INSERT of ``--rows`` rows: a step per row
  multi-row     the same rows as INSERTs of 256 rows each (gateway.bulk.insert_rows)
  fetchall      a SELECT of half as many rows: a step per row
  aggregate     the same rows as one JSON text (gateway.bulk.select_rows): one step
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.bulk import insert_rows, select_rows  # noqa: E402

COLUMNS = (
    "kind, node, boot, seq, uptime, ts, unsynced, transport, data, stored, epoch, rssi, verdict"
)
INSERT = f"INSERT INTO records({COLUMNS}) VALUES"


def rows(n: int) -> list[tuple[object, ...]]:
    return [
        (1, 0xB000 + i % 16, 1, i, i, 1_790_000_000_000 + i, None, "serial", os.urandom(44),
         1_790_000_000_000, 0, None, None)
        for i in range(n)
    ]  # fmt: skip


def best_ms(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(Path(d) / "bench.db", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.isolation_level = "DEFERRED"  # as the outbox: `with db` is one transaction
        db.execute(
            "CREATE TABLE records(id INTEGER PRIMARY KEY AUTOINCREMENT, kind, node, boot, seq, "
            "uptime, ts, unsynced, transport, data BLOB, stored, epoch, rssi, verdict)"
        )
        batch = rows(args.rows)
        marks = ", ".join("?" * 13)

        def executemany() -> None:
            with db:
                db.executemany(f"{INSERT} ({marks})", batch)

        def multi_row() -> None:
            with db:
                insert_rows(db, INSERT, 13, batch)

        def fetchall() -> None:
            db.execute(
                "SELECT * FROM records ORDER BY id DESC LIMIT ?", (args.rows // 2,)
            ).fetchall()

        def aggregate() -> None:
            select_rows(
                db,
                f"id, {COLUMNS.replace('data', 'hex(data)')}",
                "SELECT * FROM records ORDER BY id DESC LIMIT ?",
                (args.rows // 2,),
            )

        cases = [("executemany", executemany), ("multi-row", multi_row),
                 ("fetchall", fetchall), ("aggregate", aggregate)]  # fmt: skip
        alone = {name: best_ms(fn) for name, fn in cases}
        stop = threading.Event()

        def spin() -> None:
            n = 0
            while not stop.is_set():
                n += 1

        busy = threading.Thread(target=spin)
        busy.start()
        try:
            beside = {name: best_ms(fn) for name, fn in cases}
        finally:
            stop.set()
            busy.join()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"SQLite {sqlite3.sqlite_version}; {args.rows} rows inserted, {args.rows // 2} read")  # fmt: skip
    print(f"{'':12} {'alone':>10} {'beside a busy thread':>22}")
    for name, _ in cases:
        print(f"{name:12} {alone[name]:8.1f} ms {beside[name]:19.1f} ms")


if __name__ == "__main__":
    main()
