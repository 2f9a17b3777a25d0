"""The verification stage: a batch's windows to one worker thread, with a bounded wait.

The pipeline hands the stage the new EVENTs of a batch before committing it and waits
for the verdicts at most ``max_wait_ms`` (docs/decisions.md, "The verdict is stored
with its event"). The wait is an ``await``: the event loop (sources, sinks) runs on,
and inference runs on the worker thread, whose runtimes release the GIL while they
compute. Nothing waits for a worker that is still busy: while an earlier batch's
windows run, a new batch's events go on unverified at once and are counted, so a
stuck model costs one wait, not one per batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gateway.config import VerifySection
from gateway.fields import NodeMeta
from gateway.logs import RateLimitedLog
from gateway.model import node_hex
from gateway.protocol import Event, Message
from gateway.verify.registry import ModelEntry
from gateway.verify.runtime import Runner
from gateway.verify.verdict import Policy, Unverified, Verdict, judge, unverified

log = logging.getLogger(__name__)

_LATENCIES = 1024  # inference times kept for the health payload's percentiles


@dataclass(slots=True)
class _Job:
    """One batch's windows, in the order given; results fill in as the worker goes."""

    work: list[tuple[Runner, bytes]]
    results: list[list[float] | Exception | None]
    expired: threading.Event = field(default_factory=threading.Event)
    done: int = 0


class VerificationStage:
    def __init__(
        self,
        section: VerifySection,
        models: dict[int, ModelEntry],
        meta: Callable[[int], NodeMeta],
        counters: Counter[str],
        failures: RateLimitedLog,
    ) -> None:
        self._models = models
        self._meta = meta
        self._groups = section.groups
        self._wait_s = section.max_wait_ms / 1000
        self._queue_size = section.queue_size
        self._tolerance = section.tolerance_lsb
        self._c = counters
        self._failures = failures
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._running: asyncio.Future[None] | None = None
        self._job: _Job | None = None
        self._latency_us: deque[float] = deque(maxlen=_LATENCIES)
        self._unknown: set[int] = set()  # model ids logged once already

    # ---- what the pipeline calls ---------------------------------------------------

    async def verdicts(self, messages: Sequence[Message]) -> list[Verdict]:
        """A verdict for each EVENT, in order; returns within about ``max_wait_ms``."""
        out: list[Verdict | None] = []
        slots: list[tuple[int, ModelEntry]] = []  # (position in out, model) of each job
        work: list[tuple[Runner, bytes]] = []
        busy = self._running is not None and not self._running.done()
        for msg in messages:
            screened = self._screen(msg)
            if isinstance(screened, Verdict):
                out.append(screened)
            elif busy or len(work) >= self._queue_size:
                out.append(unverified(Unverified.BUSY))
            else:
                entry, window = screened
                slots.append((len(out), entry))
                work.append((entry.runner, window))
                out.append(None)
        if work:
            await self._run(slots, work, messages, out)
        verdicts = [v if v is not None else unverified(Unverified.LATE) for v in out]
        for v in verdicts:
            self._count(v)
        return verdicts

    def health(self) -> dict[str, Any]:
        job = self._job
        running = self._running is not None and not self._running.done()
        times = sorted(self._latency_us)
        return {
            "models": [
                {
                    "model_id": f"{model_id:08x}",
                    "runs": f"{e.own_id:08x}",
                    "file": str(e.file),
                    "runtime": e.runner.runtime,
                    "kernels": e.runner.kernels,
                    "policy": e.policy,
                }
                for model_id, e in self._models.items()
            ],
            "queue_depth": len(job.work) - job.done if job is not None and running else 0,
            "queue_size": self._queue_size,
            "worker_busy": running,
            "inference_us_p50": _percentile(times, 0.50),
            "inference_us_p99": _percentile(times, 0.99),
        }

    def close(self) -> None:
        if self._job is not None:
            self._job.expired.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- inside ----------------------------------------------------------------------

    def _screen(self, msg: Message) -> Verdict | tuple[ModelEntry, bytes]:
        """The model for an event and its window, or the verdict of an event no model
        can take."""
        event = msg.body
        assert isinstance(event, Event)
        if event.window is None:
            return unverified(Unverified.NO_WINDOW)
        entry = self._models.get(event.model_id)
        if entry is None:
            if event.model_id not in self._unknown:
                self._unknown.add(event.model_id)
                log.warning(
                    "no verification model for model id %08x (first seen from node %s): its "
                    "events go on unverified; add it to [[verify.models]] to check them",
                    event.model_id,
                    node_hex(msg.header.node_id),
                )
            return unverified(Unverified.UNKNOWN_MODEL)
        problem = entry.window_problem(event.window)
        if problem is not None:
            self._failures.warning(
                f"window:{msg.header.node_id}:{event.model_id}",
                "node %s sent a window its model %08x cannot take (%s): its events go on "
                "unverified",
                node_hex(msg.header.node_id),
                event.model_id,
                problem,
            )
            return unverified(Unverified.WINDOW_MISMATCH)
        return entry, event.window.data

    async def _run(
        self,
        slots: list[tuple[int, ModelEntry]],
        work: list[tuple[Runner, bytes]],
        messages: Sequence[Message],
        out: list[Verdict | None],
    ) -> None:
        job = _Job(work, [None] * len(work))
        self._job = job
        self._running = asyncio.get_running_loop().run_in_executor(self._pool, self._work, job)
        await asyncio.wait({self._running}, timeout=self._wait_s)
        job.expired.set()  # what is not done now is late: the worker stops at the next window
        for (at, entry), result in zip(slots, list(job.results), strict=True):
            if result is None:
                continue
            msg = messages[at]
            if isinstance(result, Exception):
                self._failures.warning(
                    "verify-failed",
                    "verification failed on an event of node %s (it goes on unverified): %r",
                    node_hex(msg.header.node_id),
                    result,
                )
                out[at] = unverified(Unverified.FAILED)
                continue
            out[at] = self._judge(msg, entry, result)

    def _work(self, job: _Job) -> None:
        """On the worker thread: each window in turn, until done or expired."""
        for i, (runner, window) in enumerate(job.work):
            if job.expired.is_set():
                return
            t0 = time.perf_counter()
            try:
                result: list[float] | Exception = runner.run(window)
            except Exception as exc:  # noqa: BLE001 - one window a model fails on stops nothing
                result = exc
            self._latency_us.append((time.perf_counter() - t0) * 1e6)
            job.results[i] = result
            job.done = i + 1

    def _judge(self, msg: Message, entry: ModelEntry, scores: list[float]) -> Verdict:
        event = msg.body
        assert isinstance(event, Event)
        meta = self._meta(msg.header.node_id)
        policy: Policy = self._groups.get(meta.group or "", entry.policy)
        verdict = judge(
            event.label,
            scores,
            step=entry.runner.step,
            tolerance_lsb=self._tolerance,
            labels=entry.labels if entry.labels is not None else meta.labels,
            policy=policy,
            kernels=entry.runner.kernels,
            model=f"{entry.own_id:08x}",
        )
        if not verdict.agreement:
            self._failures.warning(
                f"disagree:{msg.header.node_id}",
                "node %s says label %d, the gateway's model %08x says %d (score %.3f)%s",
                node_hex(msg.header.node_id),
                event.label,
                entry.own_id,
                verdict.label,
                verdict.score,
                ": the event is dropped (policy drop_disagreeing)" if verdict.drop else "",
            )
        return verdict

    def _count(self, v: Verdict) -> None:
        if not v.verified:
            self._c[f"events_unverified_{v.reason}"] += 1
            return
        self._c["events_verified"] += 1
        if not v.agreement:
            self._c["events_disagreeing"] += 1
        if v.drop:
            self._c["events_dropped_disagreeing"] += 1


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 1)
