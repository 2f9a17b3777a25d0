"""Figures of verification, on this machine. Prints figures; asserts nothing.

    python bench/bench_verify.py [--events 20000] [--sidecar .venv-tflite/bin/python]

Figures:
  inference    per window, median and p99, for each runtime that imports here (and in the
               sidecar environment, where tflite-runtime lives) with reference and fast
               kernels: the shipped model on its 40 held-out windows, 50 rounds
  throughput   events/s end to end (bench_pipeline.py's setup: the gateway process,
               Mosquitto, a counting subscriber) with every event carrying its window,
               verification off, then on (reference kernels, policy flag)
  memory       resident set size added by importing the runtime and loading the model, in
               a fresh process; and the gateway process's, verification off against on,
               with the worker process's beside it
  model        size, tensor arena, held-out accuracy and confusion matrix (model.json)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.verify_parity import MODEL_DIR, golden, meta  # noqa: E402

ROUNDS = 50


def inference(runtime: str, kernels: str) -> dict:
    """Per-window times of Runner.run (what the worker thread calls), in µs."""
    from gateway.verify.runtime import Runner

    runner = Runner((MODEL_DIR / "model.tflite").read_bytes(), runtime=runtime, kernels=kernels)
    windows = [
        bytes.fromhex(w["window_hex"]) for w in golden()["windows"] if w["set"] == "held_out"
    ]
    for w in windows:  # warm-up: the first invoke allocates
        runner.run(w)
    times = []
    for _ in range(ROUNDS):
        for w in windows:
            t0 = time.perf_counter()
            runner.run(w)
            times.append((time.perf_counter() - t0) * 1e6)
    times.sort()
    return {
        "runtime": runner.runtime,
        "kernels": kernels,
        "p50_us": times[len(times) // 2],
        "p99_us": times[int(len(times) * 0.99)],
        "n": len(times),
    }


def rss_added() -> dict:
    """In this fresh process: RSS before, after importing the runtime, after loading."""

    def rss_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    base = rss_kb()
    from gateway.verify.runtime import Runner, runtime_module

    runtime_module("auto")
    imported = rss_kb()
    Runner((MODEL_DIR / "model.tflite").read_bytes(), runtime="auto", kernels="reference")
    return {"import_mb": (imported - base) / 1024, "load_mb": (rss_kb() - imported) / 1024}


def _in(python: str, call: str) -> dict:
    code = f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); from bench.bench_verify import *; print(json.dumps({call}))"
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--sidecar", default=str(ROOT / ".venv-tflite" / "bin" / "python"))
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    m = meta()
    print(
        f"model       {m['name']}: {m['size_bytes']:,} bytes, tensor arena {m['arena_bytes']:,} bytes, "
        f"input {m['input']['dims']} int8, {len(m['labels'])} labels"
    )
    acc = m["accuracy"]
    print(
        f"accuracy    held-out ({acc['held_out_windows']} windows): float {acc['float']:.1%}, "
        f"int8 (TFLM) {acc['int8_tflm']:.1%}"
    )
    print(f"confusion   int8, rows true {m['labels']}: {m['confusion']['int8_tflm']}")

    pythons = [("this environment", sys.executable, "ai-edge-litert")]
    if Path(args.sidecar).exists():
        pythons.append(("sidecar", args.sidecar, "tflite-runtime"))
    for where, python, runtime in pythons:
        for kernels in ("reference", "fast"):
            try:
                r = _in(python, f"inference({runtime!r}, {kernels!r})")
            except subprocess.CalledProcessError as exc:
                print(f"inference   {runtime} ({where}): not measured: {exc.stderr.strip()[-200:]}")
                break
            print(
                f"inference   {r['runtime']:15} {r['kernels']:9} p50 {r['p50_us']:6.1f} µs  "
                f"p99 {r['p99_us']:6.1f} µs per window ({r['n']} runs)"
            )
    mem = _in(sys.executable, "rss_added()")
    print(
        f"memory      importing the runtime adds {mem['import_mb']:.1f} MB resident; "
        f"loading the model {mem['load_mb']:.1f} MB more"
    )

    from bench.bench_pipeline import run  # needs the test environment (Mosquitto, pytest)

    results = {}
    for name, verify in (("off", {}), ("on", {"verify": _verify_section()})):
        verify["health"] = {"interval_s": 1}
        with tempfile.TemporaryDirectory() as d:
            results[name] = run(
                Path(d),
                ports=4,
                nodes_per_port=4,
                per_node=args.events // 16,
                rate_hz=None,
                window=True,
                **verify,
            )
    off, on = results["off"], results["on"]
    print(
        f"throughput  verification off {off['events_per_s']:8,.0f} events/s, on {on['events_per_s']:8,.0f} "
        f"events/s ({on['events_per_s'] / off['events_per_s']:.2f} of off; every event with its "
        f"600-value window; {on['events']}/{on['expected']} distinct)"
    )
    c = (on["status"] or {}).get("counters", {})
    v = (on["status"] or {}).get("verify", {})
    print(
        f"            with it on: {c.get('events_verified', 0):,} verified, "
        f"{c.get('events_unverified_busy', 0):,} unverified busy, {c.get('events_unverified_late', 0):,} late; "
        f"worker p50 {v.get('inference_us_p50')} µs, p99 {v.get('inference_us_p99')} µs per window"
    )
    print(
        f"memory      gateway process {off['rss_mb']:.1f} MB resident with verification off, "
        f"{on['rss_mb']:.1f} MB on, plus its worker process {on['worker_rss_mb'] or float('nan'):.1f} MB"
    )


def _verify_section() -> dict:
    model = {"file": str(MODEL_DIR / "model.tflite"), "sha256": meta()["sha256"], "policy": "flag"}
    return {"enabled": True, "models": [model]}


if __name__ == "__main__":
    main()
