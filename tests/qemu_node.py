"""The reference node's Cortex-M4 image running in QEMU (mps2-an386), UART0 on a pty.

Built from mcu_firmware/ by its Makefile; a test that needs it fails, never skips,
when the ARM toolchain or QEMU is missing (scripts/setup.sh test installs both).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "mcu_firmware"
ELF = FIRMWARE / "build" / "qemu" / "tinyml-node.elf"
MODEL_DIR = ROOT / "gateway" / "models" / "basicmotions"
NODE_ID = 0x5EED0000A3860001  # the Makefile's NODE_ID
THRESHOLD = 32768  # main.c: an event when the top score is at least 0.5


def build_firmware() -> Path:
    missing = [t for t in ("make", "arm-none-eabi-gcc", "qemu-system-arm") if not shutil.which(t)]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not found: run scripts/setup.sh test")
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "qemu"], check=True, capture_output=True)
    return ELF


def expected_labels() -> list[int]:
    """The label of each EVENT in order: the data set's windows as the node plays them,
    keeping those whose top TFLM score reaches the threshold (the node's decision)."""
    golden = json.loads((MODEL_DIR / "golden.json").read_text())
    labels = []
    for w in golden["windows"]:
        q = w["tflm_output"]
        top = max(range(len(q)), key=q.__getitem__)
        if (q[top] + 128) * 257 >= THRESHOLD:
            labels.append(top)
    return labels


def qemu_command(elf: Path, serial: str, *extra: str) -> list[str]:
    """qemu-system-arm on the mps2-an386 (Cortex-M4) with UART0 on ``serial``."""
    return [
        "qemu-system-arm",
        "-M",
        "mps2-an386",
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        serial,
        *extra,
        "-kernel",
        str(elf),
    ]


class QemuNode:
    """qemu-system-arm running the node image; ``pty`` is its UART0."""

    def __init__(self, elf: Path, log: Path) -> None:
        self.elf = elf
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.pty = ""

    def start(self) -> str:
        self.proc = subprocess.Popen(
            qemu_command(self.elf, "pty"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        # QEMU names the pty it made on its first line of output
        line = self.proc.stdout.readline().decode(errors="replace")
        with open(self.log, "a") as log:
            log.write(line)
        m = re.search(r"(/dev/pts/\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"qemu-system-arm did not report its pty: {line!r}")
        self.pty = m.group(1)
        return self.pty

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
