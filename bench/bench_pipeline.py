"""End-to-end figures for the gateway, on this machine. Prints figures; asserts nothing.

    python bench/bench_pipeline.py [--events 60000] [--ports 4]

With TGW_BENCH_PROFILE=/tmp/gw set, every gateway process of the run writes a cProfile
(/tmp/gw.1 is the throughput phase's); figures taken under the profiler are not figures.

Processes: the gateway (``python -m gateway run``, its own process, as in
production), Mosquitto, and mosquitto_sub feeding a process that counts distinct events;
simulated nodes write pre-encoded frames into pseudo-terminals from threads
of this process and discard the ACKs coming back.

Figures:
  throughput   events/s from the first to the last distinct event at the subscriber
  cpu          gateway CPU time (user + system, all threads) per event during that run
  latency      frame written -> message received by the subscriber, p50/p99, at 1,000 events/s
  memory       gateway resident set size with 100 nodes
  start        process start (exec) -> READY=1 on the notify socket
  disk         bytes the gateway process wrote to storage per 1,000 events (/proc/PID/io)
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.protocol import encode, encode_frame  # noqa: E402
from gateway.sim.link import open_pty  # noqa: E402
from gateway.sim.node import expected_event  # noqa: E402
from tests.peers import Mosquitto, config_data, toml_text  # noqa: E402

UART_115200_BYTES_S = 11_520  # 8N1: 10 bits per byte


def subscriber(port: int, want: int, out: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg]
    """Counts distinct events as Mosquitto's own C client receives them.

    A Python MQTT client would spend more CPU per message than the gateway does and
    cap the figure on two cores; mosquitto_sub prints one JSON payload per line.
    """
    binary = shutil.which("mosquitto_sub")
    if binary is None:
        sys.exit("bench: mosquitto_sub is missing: run scripts/setup.sh (apt mosquitto-clients)")
    sub = subprocess.Popen(
        [binary, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", "tinyml/bench/+/event"],
        stdout=subprocess.PIPE,
    )
    assert sub.stdout is not None
    probing = threading.Event()
    threading.Thread(target=_probe, args=(port, probing), daemon=True).start()
    seen: set[str] = set()
    lat: list[float] = []
    first = last = 0.0
    rest = b""
    while len(seen) < want:
        chunk = os.read(sub.stdout.fileno(), 1 << 16)
        if not chunk:
            break
        now_ms = time.monotonic() * 1000
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            e = json.loads(line)
            if "probe" in e:
                probing.set()
                ready.set()
                continue
            if e["key"] in seen:
                continue
            seen.add(e["key"])
            # the writer put its monotonic clock (ms, mod 2^32) in the node uptime
            lat.append((now_ms - e["uptime_ms"]) % (1 << 32))
            if len(seen) == 1:
                first = time.monotonic()
            last = time.monotonic()
    sub.terminate()
    sub.wait()
    out.put({"count": len(seen), "seconds": last - first, "latency_ms": lat})


def _probe(port: int, seen: threading.Event) -> None:
    """Publishes a marker until the subscriber has it: then its subscription is live."""
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{os.getpid()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    while not seen.wait(0.2):
        c.publish("tinyml/bench/probe/event", '{"probe":1}', qos=1)
    c.loop_stop()
    c.disconnect()


def write_all(fd: int, data: bytes | bytearray) -> None:
    """The pty is non-blocking (a reader thread shares it): wait for room instead."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def flood(nodes: list[int], per_node: int, window: bool = False) -> bytes:
    """Every frame of one port's unpaced run, encoded before the run starts: encoding in
    the writer threads would take their share of two cores from the gateway."""
    out = bytearray()
    for s in range(1, per_node + 1):
        for node in nodes:
            event = expected_event(node, s, window=window)
            out += encode_frame(encode(event, node_id=node, boot_id=1, seq=s, uptime_ms=s))
    return bytes(out)


def writer(
    link_fd: int,
    nodes: list[int],
    per_node: int,
    rate_hz: float | None,
    stop: threading.Event,
    window: bool = False,
    frames: bytes | None = None,
) -> None:
    """Writes events round-robin over its nodes; paced when rate_hz is set (events/s for
    this port); unpaced, ``frames`` (from ``flood``) in blocks of 16 KiB."""
    if frames is not None:
        for at in range(0, len(frames), 16_384):
            write_all(link_fd, frames[at : at + 16_384])
            if stop.is_set():
                return
        return
    t0 = time.monotonic()
    sent = 0
    batch = bytearray()
    for s in range(1, per_node + 1):
        for node in nodes:
            if rate_hz is not None:
                due = t0 + sent / rate_hz
                delay = due - time.monotonic()
                if delay > 0:
                    if batch:
                        write_all(link_fd, batch)
                        batch.clear()
                    time.sleep(delay)
            stamp = int(time.monotonic() * 1000) & 0xFFFFFFFF
            batch += encode_frame(
                encode(
                    expected_event(node, s, window=window),
                    node_id=node,
                    boot_id=1,
                    seq=s,
                    uptime_ms=stamp,
                )
            )
            sent += 1
            if rate_hz is not None or len(batch) > 16_384:
                write_all(link_fd, batch)
                batch.clear()
        if stop.is_set():
            return
    if batch:
        write_all(link_fd, batch)


def drain(fd: int, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.005)
        except OSError:
            return


def proc_io_write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as name -> value."""
    return dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )


def kb_as_mb(value: str) -> float:
    return int(value.split(maxsplit=1)[0]) / 1024  # "41234 kB"


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    fields = proc_status(pid)
    return kb_as_mb(fields["VmRSS"]), kb_as_mb(fields["VmHWM"])


_PROFILES = itertools.count(1)


def start_gateway(
    tmp: Path, broker: Mosquitto, paths: list[str], **sections: dict
) -> tuple[subprocess.Popen[bytes], float]:
    data = config_data(tmp, broker, paths, **sections)
    data["gateway"]["id"] = "bench"
    data["outbox"] = {}  # the product's defaults, not the tests' short commit interval
    data["log"] = {"level": "warning"}
    data["health"] = {"interval_s": 30, **sections.get("health", {})}
    cfg = tmp / "gateway.toml"
    cfg.write_text(toml_text(data))
    sock_path = tmp / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    # TGW_BENCH_PROFILE=/tmp/gw: each gateway of the run under cProfile, /tmp/gw.1, .2, ...
    prof = os.environ.get("TGW_BENCH_PROFILE")
    profile = ["-m", "cProfile", "-o", f"{prof}.{next(_PROFILES)}"] if prof else []
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *profile, "-m", "gateway", "run", "-c", str(cfg)],
        cwd=ROOT,
        env=env,
        stderr=open(tmp / "gateway.log", "ab"),
    )
    while b"READY=1" not in sock.recv(4096):
        pass
    ready_s = time.monotonic() - t0
    sock.close()
    return proc, ready_s


def run(
    tmp: Path,
    *,
    ports: int,
    nodes_per_port: int,
    per_node: int,
    rate_hz: float | None,
    window: bool = False,
    **sections: dict,
) -> dict:
    """One gateway process fed by ``ports`` ptys; ``sections`` go into its configuration."""
    broker = Mosquitto(tmp)
    broker.start()
    links = [open_pty() for _ in range(ports)]
    proc, ready_s = start_gateway(tmp, broker, [link.path for link in links], **sections)
    total = ports * nodes_per_port * per_node
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    sub_ready = mp.Event()
    sub = mp.Process(target=subscriber, args=(broker.port, total, out, sub_ready))
    sub.start()
    sub_ready.wait(30)
    time.sleep(0.5)
    stop = threading.Event()
    io0 = proc_io_write_bytes(proc.pid)
    cpu0 = cpu_s(proc.pid)
    threads = []
    for i, link in enumerate(links):
        nodes = [0xB000 + i * 1000 + n for n in range(nodes_per_port)]
        port_rate = None if rate_hz is None else rate_hz / ports
        frames = flood(nodes, per_node, window) if rate_hz is None else None
        threads.append(
            threading.Thread(
                target=writer,
                args=(link.fd, nodes, per_node, port_rate, stop, window, frames),
                daemon=True,
            )
        )
        threads.append(threading.Thread(target=drain, args=(link.fd, stop), daemon=True))
    peak = (0.0, 0.0)
    for t in threads:
        t.start()
    result = None
    while result is None:
        try:
            result = out.get(timeout=1)
        except Exception:
            peak = max(peak, rss_mb(proc.pid))
    io1 = proc_io_write_bytes(proc.pid)
    cpu1 = cpu_s(proc.pid)
    rss_now, hwm = rss_mb(proc.pid)
    status = last_status(broker.port) if "health" in sections else None
    worker_pid = ((status or {}).get("verify") or {}).get("worker_pid")
    worker_rss = rss_mb(worker_pid)[0] if worker_pid else None
    stop.set()
    sub.join(10)
    proc.terminate()
    proc.wait(30)
    for link in links:
        link.close()
    broker.stop()
    lat = sorted(result["latency_ms"])
    return {
        "events": result["count"],
        "expected": total,
        "events_per_s": result["count"] / result["seconds"] if result["seconds"] else float("nan"),
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[int(len(lat) * 0.99) - 1],
        "rss_mb": rss_now,
        "rss_peak_mb": hwm,
        "ready_s": ready_s,
        "disk_bytes_per_1000": (io1 - io0) / result["count"] * 1000,
        "cpu_us_per_event": (cpu1 - cpu0) / result["count"] * 1e6,
        "status": status,
        "worker_rss_mb": worker_rss,
    }


def last_status(port: int) -> dict | None:
    """The gateway's retained health payload, once more than a health interval has passed."""
    time.sleep(2.0)
    done = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "tinyml/bench/status",
            "-C",
            "1",
            "-W",
            "10",
        ],
        capture_output=True,
        check=False,
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--ports", type=int, default=4)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as d:
        r = run(
            Path(d),
            ports=args.ports,
            nodes_per_port=4,
            per_node=args.events // (4 * args.ports),
            rate_hz=None,
        )
    frame = len(
        encode_frame(encode(expected_event(1, 1), node_id=1, boot_id=1, seq=1, uptime_ms=1))
    )
    print(
        f"throughput  {r['events_per_s']:9,.0f} events/s end to end ({r['events']}/{r['expected']} distinct, "
        f"{args.ports} ptys x 4 nodes, frames of {frame} B)"
    )
    print(
        f"cpu         {r['cpu_us_per_event']:9,.1f} µs of gateway CPU per event (all its threads)"
    )
    print(
        f"            ceiling of a real 115,200-baud port: {UART_115200_BYTES_S / frame:,.0f} such events/s per port"
    )
    print(
        f"disk        {r['disk_bytes_per_1000'] / 1024:9,.1f} KiB written per 1,000 events at full speed"
    )
    print(f"start       {r['ready_s'] * 1000:9,.0f} ms from exec to READY=1")
    with tempfile.TemporaryDirectory() as d:
        r = run(Path(d), ports=2, nodes_per_port=5, per_node=3000, rate_hz=1000)
    print(
        f"latency     p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms at 1,000 events/s "
        f"(written to pty -> received by subscriber; {r['events']} events)"
    )
    print(
        f"disk        {r['disk_bytes_per_1000'] / 1024:9,.1f} KiB written per 1,000 events at 1,000 events/s"
    )
    with tempfile.TemporaryDirectory() as d:
        r = run(Path(d), ports=4, nodes_per_port=25, per_node=20, rate_hz=100)
    print(
        f"memory      {r['rss_mb']:9,.1f} MB resident ({r['rss_peak_mb']:.1f} MB peak) with 100 nodes"
    )


if __name__ == "__main__":
    main()
