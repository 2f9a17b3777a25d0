"""``tinyml-gateway simulate``: simulated nodes on a pseudo-terminal or a serial device."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from gateway.model import node_hex, parse_node_id
from gateway.sim.link import NodeRunner, open_device, open_pty
from gateway.sim.node import SimulatedNode


def run_simulate(args: argparse.Namespace) -> int:
    try:
        first = parse_node_id(args.first_id)
        key = bytes.fromhex(args.key) if args.key else None
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    if not (0 <= args.corrupt <= 1000 and 0 <= args.wrong_label <= 1000 - args.corrupt):
        print("simulate: --corrupt and --wrong-label are per mille, 1000 in all", file=sys.stderr)
        return 2
    nodes = [
        SimulatedNode(
            first + i,
            boot_id=args.boot,
            key=key,
            window=args.window,
            corrupt_permille=args.corrupt,
            wrong_permille=args.wrong_label,
        )
        for i in range(args.nodes)
    ]
    link = open_device(str(args.device), args.baudrate) if args.device else open_pty()
    print(
        f"simulating {len(nodes)} node(s) ({', '.join(node_hex(n.node_id) for n in nodes)}) "
        f"on {link.path}; point a [[serial]] path at it",
        flush=True,
    )
    runner = NodeRunner(link, nodes, rate_hz=args.rate, count=args.count)

    async def main() -> None:
        task = asyncio.create_task(runner.run(until_acked=args.count is not None))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        link.close()
    s = runner.stats
    print(
        f"sent {s.events} events, {s.resends} resends, {s.heartbeats} heartbeats; "
        f"{s.acks} ACKs and {s.commands} commands received"
    )
    return 0
