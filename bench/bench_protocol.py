"""Python decode throughput of typical EVENT frames from a byte stream, on one core.

    python bench/bench_protocol.py [--frames N]

Feeds the stream in chunks the size a serial read returns and reports frames/s
(median of 5 runs). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

from gateway.protocol import Event, FrameDecoder, encode, encode_frame


def stream_of(frames: int) -> tuple[bytes, int]:
    parts = [
        encode_frame(
            encode(
                Event(0x1A2B3C4D, s % 4, 50000 + s % 1000, 1800),
                node_id=0xA1B2C3D4E5F60718,
                boot_id=3,
                seq=s,
                uptime_ms=1000 + s,
            )
        )
        for s in range(1, frames + 1)
    ]
    return b"".join(parts), len(parts[0])


def run(stream: bytes, chunk: int, frames: int) -> float:
    decoder = FrameDecoder()
    t0 = time.perf_counter()
    got = 0
    for i in range(0, len(stream), chunk):
        got += len(decoder.feed(stream[i : i + chunk]))
    elapsed = time.perf_counter() - t0
    if got != frames or decoder.frames_bad:
        raise SystemExit(f"decoded {got} of {frames}, {decoder.frames_bad} bad")
    return frames / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=200_000)
    args = ap.parse_args()
    stream, frame_len = stream_of(args.frames)
    print(f"EVENT frame: {frame_len} bytes on the wire ({frame_len - 2} between delimiters)")
    for chunk in (64, 4096):
        rates = [run(stream, chunk, args.frames) for _ in range(5)]
        print(
            f"read size {chunk:5d} B: {statistics.median(rates):10,.0f} frames/s "
            f"(min {min(rates):,.0f}, max {max(rates):,.0f})"
        )


if __name__ == "__main__":
    main()
