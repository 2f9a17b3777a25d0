"""The disk under the outbox fails: a real ext4 filesystem on a loop device, mounted
``errors=remount-ro`` as Raspberry Pi OS mounts its root, and a real filesystem error
raised through the kernel's own ``trigger_fs_error`` (what an SD card's I/O error does:
the kernel aborts the journal and turns the filesystem read-only, while /proc/mounts still
says ``rw``).

The gateway must stop with one ERROR line that names the filesystem problem and the fix,
no traceback, exit code 74 (EX_IOERR), the same line at every restart; and once the
filesystem is checked and mounted again, every event arrives: the nodes kept what was
not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.sim.link import NodeRunner
from gateway.sim.node import SimulatedNode
from gateway.sinks.delivery import Delivery
from tests.peers import Collector, Mosquitto, config_data, toml_text
from tests.test_ingest_state import _fill
from tests.test_no_loss import _spawn, distinct
from tests.test_outbox import outbox, rec, small_tmpfs

EX_IOERR = 74
PER_NODE = 600


class Ext4:
    """An ext4 image on a loop device, mounted errors=remount-ro at ``where``."""

    def __init__(self, image: Path, where: Path) -> None:
        self.image, self.where = image, where
        self.device = ""

    def create(self) -> None:
        subprocess.run(["truncate", "-s", "64M", str(self.image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)

    def mount(self) -> None:
        r = subprocess.run(
            ["losetup", "-f", "--show", str(self.image)], capture_output=True, text=True
        )
        if r.returncode != 0:
            pytest.fail(f"a loop device is needed to test a failing disk (run as root): {r.stderr}")
        self.device = r.stdout.strip()
        self.where.mkdir(exist_ok=True)
        subprocess.run(
            ["mount", "-t", "ext4", "-o", "errors=remount-ro", self.device, str(self.where)],
            check=True,
        )

    def fail(self) -> None:
        """A filesystem error, as the kernel raises on an I/O error of the card."""
        name = Path(self.device).name
        Path(f"/sys/fs/ext4/{name}/trigger_fs_error").write_text("test")

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.where)], check=False)
        subprocess.run(["losetup", "-d", self.device], check=False)

    def fsck(self) -> None:
        r = subprocess.run(["e2fsck", "-f", "-y", str(self.image)], capture_output=True)
        assert r.returncode in (0, 1), r.stdout  # 1: errors corrected


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Ext4]:
    fs = Ext4(tmp_path / "card.img", tmp_path / "card")
    fs.create()
    fs.mount()
    try:
        yield fs
    finally:
        fs.unmount()


async def _exit_code(proc: subprocess.Popen[bytes], timeout_s: float = 60) -> int:
    for _ in range(int(timeout_s * 10)):  # a hang guard only
        code = proc.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    raise AssertionError("the gateway did not exit after the filesystem error")


def _errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line or "ERROR" in line[:40]]


async def test_a_filesystem_turned_read_only_stops_the_gateway_with_one_clear_line(
    tmp_path: Path, ext4: Ext4, mosquitto: Mosquitto, pty
) -> None:
    link = pty()
    nodes = [SimulatedNode(0xD150 + i, ring_size=PER_NODE + 10) for i in range(2)]
    data = config_data(tmp_path, mosquitto, [link.path], log={"level": "warning"})
    data["gateway"]["data_dir"] = str(ext4.where / "data")
    config = tmp_path / "gateway.toml"
    config.write_text(toml_text(data))
    logs = [tmp_path / f"gateway{i}.log" for i in range(3)]
    sub = Collector(mosquitto, "tinyml/gw/#", client_id="disk-subscriber")
    await sub.start()
    runner = NodeRunner(link, nodes, rate_hz=50, count=PER_NODE)
    sim = asyncio.create_task(runner.run(until_acked=True))
    proc = _spawn(config, logs[0])
    try:
        while sum(n.seq for n in nodes) < PER_NODE // 2:
            await asyncio.sleep(0.05)
        ext4.fail()
        first = await _exit_code(proc)
        # systemd restarts it: the filesystem is still read-only
        proc = _spawn(config, logs[1])
        second = await _exit_code(proc)
        # the operator checks the card and mounts it again; the nodes still hold the rest
        ext4.unmount()
        ext4.fsck()
        ext4.mount()
        proc = _spawn(config, logs[2])
        await asyncio.wait_for(sim, 120)
        total = PER_NODE * len(nodes)
        await sub.wait_for(lambda: len(distinct(sub.messages)) >= total, timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sim.cancel()
        await asyncio.gather(sim, return_exceptions=True)
        await sub.stop()
    texts = [log.read_text() for log in logs]
    assert (first, second) == (EX_IOERR, EX_IOERR), texts[:2]
    for text in texts:
        assert "Traceback" not in text, text
    failed, restarted = _errors(texts[0]), _errors(texts[1])
    assert len(failed) == 1 and len(restarted) == 1, texts[:2]
    for line in (failed[0], restarted[0]):
        assert "read-only" in line and "fsck" in line and "dmesg" in line, line
        assert "permission" not in line, line
    assert len(distinct(sub.messages)) == PER_NODE * len(nodes)
    assert all(n.dropped == 0 for n in nodes)


async def test_a_full_disk_logs_failed_delivery_records_once_then_a_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_tmpfs(tmp_path / "small", "2m") as disk:
        ob = outbox(disk / "o.db", sync="normal")
        await ob.open(["mqtt"])
        await ob.commit([rec(s) for s in range(1, 11)], {})
        delivery = Delivery("mqtt", ob)
        await delivery.start()
        _fill(disk)
        caplog.set_level(logging.INFO)
        for upto in range(1, 41):  # ten seconds of flushes, every 0.25 s
            delivery.confirm(upto, 1)
            await delivery.flush()
        failed = [r for r in caplog.records if "could not record delivery" in r.getMessage()]
        assert len(failed) == 1, [r.getMessage() for r in failed]
        (disk / "filler").unlink()
        await delivery.flush()
        assert any("delivery is recorded again" in r.getMessage() for r in caplog.records)
        assert await ob.cursor("mqtt") == 40
        await ob.close()
