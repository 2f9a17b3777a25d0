"""``tinyml-gateway simulate --device``: simulated nodes on a serial device the user names
(here the slave side of a real pseudo-terminal). It must send, wait without spinning while
nothing comes back (pyserial leaves the port in "polling" mode, VMIN=0), go on waiting
without spinning once the other end hangs up, and stop at SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

from gateway.protocol import FrameDecoder, MsgType
from tests.peers import env_without_coverage

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _busy_share(pid: int, seconds: float = 2.0) -> float:
    """The share of one core the process used over ``seconds``: about 1.0 when it spins."""
    cpu, wall = _cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    return (_cpu_s(pid) - cpu) / (time.monotonic() - wall)


def test_simulate_on_a_device_sends_waits_quietly_and_stops(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "simulate", "--device", path, "--rate", "20"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env_without_coverage(),
    )
    try:
        decoder = FrameDecoder()
        kinds: list[MsgType] = []
        os.set_blocking(master, False)
        deadline = time.monotonic() + 60  # a hang guard
        while kinds.count(MsgType.EVENT) < 10:
            assert time.monotonic() < deadline, f"sent {kinds} only"
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                time.sleep(0.05)
                continue
            kinds += [m.header.type for m in decoder.feed(data)]
        assert kinds[0] == MsgType.INFO
        # nothing comes back from the gateway side: waiting must cost next to nothing
        waiting = _busy_share(proc.pid)
        os.close(master)  # the other end hangs up
        os.close(slave)
        hung_up = _busy_share(proc.pid)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert waiting < 0.5, f"simulate used {waiting:.0%} of a core while waiting"
    assert hung_up < 0.5, f"simulate used {hung_up:.0%} of a core after the hang-up"
    assert code == 0, out
    assert "Traceback" not in out and "sent " in out
