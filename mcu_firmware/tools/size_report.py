#!/usr/bin/env python3
"""Flash and RAM of the reference node on a Cortex-M4 at -Os, by component.

    python3 mcu_firmware/tools/size_report.py BUILD_DIR

Builds the QEMU mps2-an386 image twice (HMAC on and off), one object per source,
links each with --gc-sections and a map file, and sums what each component
contributes to the linked image: only code that a node really links is counted.
Flash is .text, .rodata and .data's initial values; RAM is .data and .bss. The
stack is reported from -fstack-usage along the deepest path of an EVENT.
Run from anywhere; needs arm-none-eabi-gcc and newlib (Debian gcc-arm-none-eabi,
libnewlib-arm-none-eabi).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

FW = Path(__file__).resolve().parents[1]
ARCH = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CFLAGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wshadow",
    "-Wconversion",
    "-Wcast-qual",
    *ARCH,
    "-Os",
    "-ffunction-sections",
    "-fdata-sections",
    "-fstack-usage",
    "-DTGW_ENABLE_GATEWAY_SIDE=0",
    "-DTGW_NODE_RING_SLOTS=64",
    "-DNODE_ID=0x5eed0000a3860001ull",
]
INCLUDES = ["protocol/include", "node/include", "backends/replay", "model"]
COMPONENTS = {
    "protocol": "protocol/src",
    "core": "node/src",
    "replay backend": "backends/replay",
    "model": "model",
    "board": "boards/qemu_mps2_an386",
}
# the calls an EVENT takes from the main loop to the UART: their frames add up
EVENT_PATH = [
    "main",
    "tgw_node_poll",
    "take_samples",
    "run_window",
    "send_event",
    "tgw_encode",
    "tgw_hmac_sha256",
]
FLASH_SECTIONS = {".text", ".ARM.exidx", ".rodata"}


def component_of(obj: str) -> str:
    name = Path(obj.split("(", maxsplit=1)[0]).name
    if "(" in obj or name.startswith("lib"):
        return "libc, libgcc"
    if name == "tgw_dataset.o":
        return "data set (QEMU sensor)"
    stem = name.removesuffix(".o")
    for comp, folder in COMPONENTS.items():
        if (FW / folder / f"{stem}.c").exists():
            return comp
    return "other"


def build(out: Path, dataset_dir: Path, hmac: int) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    sources = [p for folder in COMPONENTS.values() for p in sorted((FW / folder).glob("*.c"))]
    sources.append(dataset_dir / "tgw_dataset.c")
    objects = []
    flags = [*CFLAGS, f"-DTGW_ENABLE_HMAC={hmac}"]
    flags += [f"-I{FW / i}" for i in INCLUDES] + [f"-I{dataset_dir}"]
    for src in sources:
        obj = out / f"{src.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *flags, "-c", str(src), "-o", str(obj)], check=True)
        objects.append(obj)
    elf, mapfile = out / "tinyml-node.elf", out / "tinyml-node.map"
    subprocess.run(
        [
            "arm-none-eabi-gcc",
            *ARCH,
            "-nostartfiles",
            "--specs=nano.specs",
            "--specs=nosys.specs",
            "-Wl,--gc-sections",
            f"-T{FW / 'boards/qemu_mps2_an386/mps2_an386.ld'}",
            f"-Wl,-Map={mapfile}",
            "-o",
            str(elf),
            *map(str, objects),
        ],
        check=True,
    )
    return elf, mapfile


ENTRY = re.compile(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$")


def sizes(mapfile: Path) -> dict[str, dict[str, int]]:
    """Bytes per component, as flash and ram, from the linked image's map."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"flash": 0, "ram": 0})
    lines = mapfile.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Linker script and memory"))
    section = pending = ""
    for line in lines[start:]:
        if line and not line.startswith(" "):
            section = line.split()[0]
            continue
        m = ENTRY.match(line)
        if not m:
            stripped = line.strip()
            if stripped.startswith(".") and " " not in stripped:
                pending = stripped  # the size follows on the next line
            continue
        name, size, obj = (m.group(1) or pending), int(m.group(3), 16), m.group(4)
        pending = ""
        if not obj.endswith((".o", ".o)")) or size == 0 or name.startswith("*"):
            continue
        comp = component_of(obj)
        if section in FLASH_SECTIONS or section == ".text":
            out[comp]["flash"] += size
        elif section == ".data":
            out[comp]["flash"] += size
            out[comp]["ram"] += size
        elif section == ".bss":
            out[comp]["ram"] += size
    return out


def symbol_sizes(elf: Path, names: set[str]) -> dict[str, int]:
    nm = subprocess.run(
        ["arm-none-eabi-nm", "-S", "--size-sort", str(elf)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = {}
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] in names:
            found[parts[3]] = int(parts[1], 16)
    return found


def constant(name: str) -> int:
    """A compile-time constant of the node headers, as the cross compiler computes it."""
    probe = f'#include "tgw_node.h"\nconst unsigned long probe = {name};\n'
    asm = subprocess.run(
        ["arm-none-eabi-gcc", *ARCH, "-std=c99", f"-I{FW / 'protocol/include'}",
         f"-I{FW / 'node/include'}", "-x", "c", "-S", "-o", "-", "-"],
        input=probe, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return int(re.search(r"\.word\s+(\d+)", asm).group(1))  # type: ignore[union-attr]


def stack_path(out: Path) -> tuple[int, list[str]]:
    frames: dict[str, int] = {}
    for su in out.glob("*.su"):
        for line in su.read_text().splitlines():
            where, size, _kind = line.split("\t")
            frames[where.rsplit(":", 1)[-1]] = int(size)
    path = [f for f in EVENT_PATH if f in frames]
    return sum(frames[f] for f in path), [f"{f} {frames[f]}" for f in path]


def main(build_dir: Path) -> None:
    dataset_dir = build_dir / "dataset"
    subprocess.run([sys.executable, str(FW / "tools/gen_dataset.py"), str(dataset_dir)], check=True)
    model_h = (FW / "model/basicmotions_model.h").read_text()
    arena = int(re.search(r"ARENA_BYTES (\d+)u", model_h).group(1))  # type: ignore[union-attr]
    print("Cortex-M4, arm-none-eabi-gcc -Os, --gc-sections, newlib-nano; node profile")
    print("(TGW_ENABLE_GATEWAY_SIDE=0), ring of 64 slots of a whole EVENT with its window.")
    for hmac in (1, 0):
        out = build_dir / f"hmac{hmac}"
        elf, mapfile = build(out, dataset_dir, hmac)
        table = sizes(mapfile)
        print(f"\n== TGW_ENABLE_HMAC={hmac}")
        print(f"{'component':<26}{'flash':>8}{'RAM':>9}")
        for comp in [*COMPONENTS, "data set (QEMU sensor)", "libc, libgcc", "other"]:
            if comp in table:
                print(f"{comp:<26}{table[comp]['flash']:>8}{table[comp]['ram']:>9}")
        both = {k: table["core"][k] + table["protocol"][k] for k in ("flash", "ram")}
        print(f"{'core + protocol':<26}{both['flash']:>8}{both['ram']:>9}")
        syms = symbol_sizes(elf, {"node", "link"})
        slot = constant("TGW_NODE_SLOT_SIZE")
        print(
            f"  of the board's RAM: tgw_node_t {syms.get('node', 0)} (the core's state: mostly the"
            f" ring, 64 slots of {slot} bytes), serial link {syms.get('link', 0)}"
        )
        total, path = stack_path(out)
        print(f"  stack on an EVENT's path: {total} bytes ({', '.join(path)})")
    model_c = (FW / "model/basicmotions_model.h").read_text()
    flatbuffer = int(re.search(r"MODEL_SIZE (\d+)u", model_c).group(1))  # type: ignore[union-attr]
    print(f"\nmodel: the flatbuffer is {flatbuffer} bytes of flash where the TFLM backend links it")
    print("(the replay image links only its labels and hash, the 'model' row); tensor arena")
    print(f"{arena} bytes of RAM, as the TFLM interpreter measured it on x86_64. The TFLM backend")
    print("is not built here: its own flash and the arena on a 32-bit MCU are measured on a board.")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
