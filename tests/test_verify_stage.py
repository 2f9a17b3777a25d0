"""The verification stage's place (gateway/verify): its own queue, task and thread.

The gateway's own parts (outbox, registry, router, ingest) from a real configuration;
the verifier is a plain function that blocks until the test lets it go, standing in
for a model (the verification issue brings the real one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from pathlib import Path

from gateway.logs import RateLimitedLog
from gateway.model import Inbound
from gateway.protocol import Ack, Event, Message, decode
from gateway.service import build
from gateway.verify import VerificationStage
from tests.peers import gateway_config
from tests.test_ingest_state import _inbound, _until, own_ingest

A = 0xE000


async def test_a_stalled_verifier_delays_no_commit_and_no_ack(tmp_path: Path) -> None:
    gw = await build(gateway_config(tmp_path, None, [], mqtt={"enabled": False}))
    gate = threading.Event()
    seen: list[int] = []
    results: list[tuple[int, str]] = []

    def verify(message: Message) -> str:
        seen.append(message.header.seq)
        if message.header.seq == 2:
            raise ValueError("a window the model cannot take")
        gate.wait(60)  # hang guard
        return f"checked {message.header.seq}"

    async def on_result(item: Inbound, result: str) -> None:
        results.append((item.message.header.seq, result))

    counters: Counter[str] = gw.health.counters
    stage = VerificationStage(
        verify, on_result, counters, RateLimitedLog(logging.getLogger("t"), 0), queue_size=2
    )
    ingest = own_ingest(gw, verification=stage)
    sent: list[bytes] = []
    for seq in range(1, 6):  # one batch: offered in order once it is committed
        await ingest.put(_inbound(A, Event(1, 0, 1, 1), seq, sent))
    tasks = [asyncio.create_task(ingest.run()), asyncio.create_task(stage.run())]
    try:
        await _until(lambda: any(_ack_upto(m) == 5 for m in sent))
        assert not gate.is_set()  # committed and acknowledged while the model is stuck
        assert counters["events_unverified_busy"] == 3  # the queue holds 2 of the 5
        gate.set()
        await asyncio.wait_for(stage.drain(), 60)
        assert seen == [1, 2]
        assert results == [(1, "checked 1")]
        assert counters["verify_failed"] == 1 and counters["events_verified"] == 1
        await ingest.put(_inbound(A, Event(1, 0, 1, 1), 6, sent))  # the stage goes on
        await _until(lambda: len(results) == 2)
        assert results[-1] == (6, "checked 6")
    finally:
        gate.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stage.close()
        await gw.outbox.close()


def _ack_upto(raw: bytes) -> int | None:
    body = decode(raw).body
    return body.seq if isinstance(body, Ack) else None
