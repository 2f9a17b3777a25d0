"""What a stored record should be: the wire message, or its fields as JSON. Prints figures.

    python bench/bench_records.py [--records 20000] [--sinks 2]

For three record shapes (an EVENT, an EVENT with a 100x6 int8 feature window, a
HEARTBEAT) it measures, on this machine, in one process:

  stored     bytes per record in the outbox's data column
  ingest     µs per record the pipeline spends making that column (the message is
             already decoded by the source; the wire form costs nothing more)
  render     µs per record one sink spends turning the column into its JSON object
  per event  ingest + sinks x render: CPU per record for the whole gateway

The wire form is what the gateway stores (docs/decisions.md, "A stored record is the
wire message"); the JSON form is the alternative it was measured against.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.fields import NodeMeta, _event, _heartbeat, record_fields  # noqa: E402
from gateway.model import Record, RecordKind  # noqa: E402
from gateway.protocol import Event, Heartbeat, Message, decode, encode  # noqa: E402
from gateway.sim.node import LABELS, expected_event  # noqa: E402

META = NodeMeta("pump-3", "hall-a", LABELS)


def _message(shape: str, seq: int) -> Message:
    if shape == "heartbeat":
        body: object = Heartbeat(3000, 2150, seq, 0, seq + 1, 0)
    else:
        body = expected_event(0xA1, seq, window=shape == "event+window")
    raw = encode(body, node_id=0xA1, boot_id=3, seq=seq, uptime_ms=1000 + seq)  # type: ignore[arg-type]
    return decode(raw)


def _record(msg: Message, data: bytes, i: int) -> Record:
    kind = RecordKind.HEARTBEAT if msg.header.type == 2 else RecordKind.EVENT
    h = msg.header
    return Record(i, kind, h.node_id, h.boot_id, h.seq, h.uptime_ms, 0, True, "serial", data)


def _as_json(msg: Message, i: int) -> bytes:
    """The JSON alternative: the kind's own fields, made once at ingest from the message
    the source decoded."""
    body = msg.body
    fields = _event(body, META) if isinstance(body, Event) else _heartbeat(body)  # type: ignore[arg-type]
    return json.dumps(fields).encode()


def _us_per(fn: Callable[[int], object], n: int) -> float:
    best = float("inf")
    for _ in range(3):  # the best of three passes: the least disturbed by the machine
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--sinks", type=int, default=2)
    args = ap.parse_args()
    n, sinks = args.records, args.sinks
    print(f"{n} records per shape, {sinks} sinks; µs per record, best of 3 passes")
    print(
        f"{'shape':<14} {'form':<5} {'stored B':>9} {'ingest':>8} {'render':>8} {'per event':>10}"
    )
    for shape in ("event", "event+window", "heartbeat"):
        msgs = [_message(shape, i + 1) for i in range(n)]
        wire = [_record(m, m.raw, i) for i, m in enumerate(msgs)]
        # stored JSON renders as STATUS records do: the common fields, then the JSON
        as_json = [
            replace(_record(m, _as_json(m, i), i), kind=RecordKind.STATUS)
            for i, m in enumerate(msgs)
        ]
        rows = [
            (
                "wire",
                len(msgs[0].raw),
                0.0,
                _us_per(lambda i, w=wire: record_fields(w[i], "gw", META), n),
            ),
            (
                "json",
                len(as_json[0].data),
                _us_per(lambda i, m=msgs: _as_json(m[i], i), n),
                _us_per(lambda i, j=as_json: record_fields(j[i], "gw", META), n),
            ),
        ]
        for form, size, ingest, render in rows:
            total = ingest + sinks * render
            print(f"{shape:<14} {form:<5} {size:>9} {ingest:>8.1f} {render:>8.1f} {total:>10.1f}")


if __name__ == "__main__":
    main()
