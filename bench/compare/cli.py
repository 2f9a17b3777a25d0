"""``python -m bench compare``: both gateways, every scenario, one table.

The peer posts to a vendor update server, with no switch to stop it. The whole comparison
therefore runs in a network namespace of its own (``unshare -rn``: a loopback interface and
nothing else), both gateways alike; its virtual environment is created before, outside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.compare import report
from bench.compare.peer import PeerEnv, PeerUnavailable

ROOT = Path(__file__).resolve().parents[2]
NETNS_ENV = "TGW_BENCH_NETNS"
ACL_USERS = ("ours", "peer")  # the access tokens: one ACL for both gateways


def _acl() -> str:
    # what a gateway may read: only what the server sends it. A plain broker echoes a
    # client's own publishes to its subscriptions; ThingsBoard does not, and the peer
    # takes its own attribute publishes for remote configuration when it hears them.
    reads = [
        "v1/devices/me/rpc/request/+",
        "v1/devices/me/rpc/response/+",
        "v1/devices/me/attributes/response/+",
        "v1/gateway/attributes/response",
        "v1/gateway/rpc",
    ]
    out = []
    for user in ACL_USERS:
        out += [f"user {user}", "topic write v1/#", *(f"topic read {t}" for t in reads)]
        out.append("topic readwrite tinyml/#")  # our Node-RED bridge's topics
    out += ["user checker", "topic readwrite v1/#"]
    return "\n".join(out) + "\n"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _reexec_in_netns(argv: list[str]) -> int:
    unshare = shutil.which("unshare")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not Path(ip).exists():
        sys.exit(
            "bench compare: needs unshare (util-linux) and ip (iproute2): run scripts/setup.sh test"
        )
    script = f'{ip} link set lo up && exec "$@"'
    cmd = [
        unshare,
        "-rn",
        "sh",
        "-c",
        script,
        "sh",
        sys.executable,
        "-m",
        "bench",
        "compare",
        *argv,
    ]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, NETNS_ENV: "1"}, check=False)
    if done.returncode != 0 and done.returncode < 0:
        print(f"bench compare: ended by signal {-done.returncode}", file=sys.stderr)
    return done.returncode


def run(args: argparse.Namespace, peer_venv_s: float | None) -> dict[str, Any]:
    from bench.compare import scenarios as sc
    from bench.compare.counter import CounterProcess
    from bench.compare.feed import Stream
    from bench.compare.proxy import Proxy
    from bench.compare.subjects import Ours, Peer, fresh
    from tests.peers import Mosquitto, free_port

    t_start = time.monotonic()
    sizes = sc.Sizes.quick() if args.quick else sc.Sizes.full()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="compare-", dir=args.work))
    acl = work / "acl"
    acl.write_text(_acl())
    tb = Mosquitto(fresh(work / "tb-broker"), extra=f"allow_anonymous true\nacl_file {acl}")
    field = Mosquitto(fresh(work / "field-broker"))
    tb.start()
    field.start()
    proxy = Proxy(free_port(), tb.port)
    counter = CounterProcess(tb.port)
    bench = sc.Bench(counter, proxy, sizes, Stream())
    env = PeerEnv()
    n = 0

    def subject(kind: str) -> Any:
        nonlocal n
        n += 1
        wd = fresh(work / f"{n:02d}-{kind}")
        if kind.startswith("ours"):
            return Ours(wd, nodered=kind == report.OURS_NR, broker=tb, tb_port=proxy.port)
        return Peer(
            wd, env=env, storage=kind.split("-")[1], field_port=field.port, tb_port=proxy.port
        )

    scenario_fns: dict[str, Any] = {
        "throughput": lambda b, s: sc.throughput(
            b, s, sizes.flood_peer if s.name == "tb-gateway" else sizes.flood_ours
        ),
        "steady": sc.steady,
        "startup": sc.startup,
        "outage": sc.outage,
        "sigterm": lambda b, s: sc.kill(b, s, signal.SIGTERM),
        "sigkill": lambda b, s: sc.kill(b, s, signal.SIGKILL),
        "burst": sc.burst,
    }
    plan = [(name, report.RUNS[name], fn) for name, fn in scenario_fns.items()]
    results: dict[str, dict[str, Any]] = {k: {} for k in report.COLUMNS}
    versions: dict[str, str] = {}
    try:
        for i, (name, kinds, fn) in enumerate(plan, 1):
            t0 = time.monotonic()
            for kind in kinds:
                s = subject(kind)
                try:
                    results[kind][name] = fn(bench, s)
                    versions.update(s.versions())
                finally:
                    s.stop(signal.SIGKILL)
                    s.feeder.close()
            line = "; ".join(f"{k} {_brief(name, results[k][name])}" for k in kinds)
            print(f"[{i}/{len(plan)}] {name} ({time.monotonic() - t0:.0f} s): {line}", flush=True)
    finally:
        counter.close()
        proxy.close()
        tb.stop()
        field.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    versions["mosquitto"] = _mosquitto_version()
    return {
        "date": dt.date.today().isoformat(),
        "command": "python -m bench compare" + (" --quick" if args.quick else ""),
        "mode": "quick" if args.quick else "full",
        "seconds": time.monotonic() - t_start,
        "peer_venv_created_s": peer_venv_s,
        "network": "loopback-only network namespace (unshare -rn)",
        "machine": {"cores": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release()},
        "versions": versions,
        "sizes": sizes.__dict__,
        "results": results,
    }


def _brief(name: str, r: dict[str, Any]) -> str:
    keys = {
        "throughput": ("events_per_s", "lost"),
        "steady": ("p99_ms", "rss_load_mb", "cpu_pct"),
        "startup": ("first_event_s",),
        "outage": ("lost", "duplicates", "drain_s"),
        "sigterm": ("lost",),
        "sigkill": ("lost",),
        "burst": ("points",),
    }[name]
    return ", ".join(f"{k}={report._fmt(r.get(k))}" for k in keys)


def _mosquitto_version() -> str:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    done = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()[:1]
    return first[0].removeprefix("mosquitto version ").strip() if first else "?"


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="a few hundred events per scenario")
    ap.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where compare.{md,json,png} go",
    )
    ap.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: the system's temp)"
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (logs of every process)"
    )
    args = ap.parse_args(argv)
    if os.environ.get(NETNS_ENV) != "1":
        env = PeerEnv()
        try:
            t = env.ensure()
        except PeerUnavailable as exc:
            sys.exit(f"bench compare: {exc}")
        if t is not None:
            print(f"peer venv created in {t:.0f} s ({env.venv})", flush=True)
            os.environ["TGW_BENCH_PEER_VENV_S"] = f"{t:.1f}"
        sys.exit(_reexec_in_netns(argv))
    venv_s = os.environ.get("TGW_BENCH_PEER_VENV_S")
    doc = run(args, float(venv_s) if venv_s else None)
    report.write(doc, args.out)
    print(report.table(doc), end="")
    print(f"written: {args.out / 'compare.md'}, compare.json, compare.png")
