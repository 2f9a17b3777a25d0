"""The verification stage: a batch's windows to the worker process, with a bounded wait.

The pipeline hands the stage the new EVENTs of a batch before committing it and waits
for the verdicts at most ``max_wait_ms`` (docs/decisions.md, "The verdict is stored
with its event"). The wait is an ``await``: the event loop (sources, sinks) runs on.
One thread of this process talks to the worker process (gateway/verify/worker.py):
it sends the batch with its deadline and blocks on the answer, without the GIL. While
the worker is still busy with an earlier batch, a new batch's events go on unverified
at once and are counted, so a stuck model costs one wait, not one per batch. A worker
that dies (a runtime crashing on a window) is started again for the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from gateway.config import VerifySection
from gateway.errors import GatewayError
from gateway.fields import NodeMeta
from gateway.logs import RateLimitedLog
from gateway.model import node_hex
from gateway.protocol import Event, Message
from gateway.verify import worker
from gateway.verify.registry import ModelEntry, ModelFile, entries
from gateway.verify.specs import ModelSpec, Scores
from gateway.verify.verdict import Policy, Unverified, Verdict, judge, unverified

log = logging.getLogger(__name__)

_LATENCIES = 1024  # inference times kept for the health payload's percentiles
START_TIMEOUT_S = 60.0  # a worker that has not loaded its models by then is stuck
# The worker stops at the deadline; the stage waits this much longer for its answer, so
# that windows done just before the deadline are not taken for late ones.
ANSWER_MARGIN_S = 0.010


class WorkerError(GatewayError):
    """The verification worker process could not be started."""


@dataclass(slots=True)
class _Job:
    work: list[tuple[int, bytes]]  # (model key, window)
    deadline: float
    results: list[worker.Result] = field(default_factory=list)


class VerificationStage:
    def __init__(
        self,
        section: VerifySection,
        files: list[ModelFile],
        counters: Counter[str],
        failures: RateLimitedLog,
    ) -> None:
        self._section = section
        self._files = files
        # what the configuration and INFO say of a node (its group, its labels): the
        # service sets the node registry's, which exists only once the outbox is open
        self.meta: Callable[[int], NodeMeta] = lambda _node: NodeMeta()
        self._groups = section.groups
        self._wait_s = section.max_wait_ms / 1000
        self._queue_size = section.queue_size
        self._tolerance = section.tolerance_steps
        self._c = counters
        self._failures = failures
        self._models: dict[int, ModelEntry] = {}
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify")
        self._running: asyncio.Future[None] | None = None
        self._job: _Job | None = None
        self._latency_us: deque[float] = deque(maxlen=_LATENCIES)
        self._unknown: set[int] = set()  # model ids logged once already

    @property
    def worker_pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        """Starts the worker and loads every model in it; raises ConfigError naming a
        model the runtime cannot use, WorkerError when the worker does not start."""
        specs = await asyncio.get_running_loop().run_in_executor(self._pool, self._spawn)
        try:
            self._models = entries(self._files, specs)
        except Exception:
            self.close()
            raise
        for e in self._models.values():
            if e.spec.kernels == "fast":
                log.warning(
                    'verify: %s runs with kernels = "fast", which differ from TFLM in every '
                    "layer: its verdicts can flag a node that computed exactly what TFLM "
                    "computes (docs/verification.md); use it for a separate verifier, and "
                    'kernels = "reference" where a disagreement raises an alert',
                    e.file,
                )
            if e.spec.decides_on == "scores":
                log.warning(
                    "verify: %s has no int8 SOFTMAX at its output: its verdicts compare "
                    "output scores, within tolerance_steps of them (docs/verification.md)",
                    e.file,
                )

    # ---- what the pipeline calls ---------------------------------------------------

    async def verdicts(self, messages: Sequence[Message]) -> list[Verdict]:
        """A verdict for each EVENT, in order; returns within about ``max_wait_ms``."""
        out: list[Verdict | None] = []
        slots: list[tuple[int, ModelEntry]] = []  # (position in out, model) of each job
        work: list[tuple[int, bytes]] = []
        busy = self._busy
        for msg in messages:
            screened = self._screen(msg)
            if isinstance(screened, Verdict):
                out.append(screened)
            elif busy or len(work) >= self._queue_size:
                out.append(unverified(Unverified.BUSY))
            else:
                entry, window = screened
                slots.append((len(out), entry))
                work.append((entry.key, window))
                out.append(None)
        if work:
            await self._run(slots, work, messages, out)
        verdicts = [v if v is not None else unverified(Unverified.LATE) for v in out]
        for v in verdicts:
            self._count(v)
        return verdicts

    @property
    def _busy(self) -> bool:
        """The worker is still on an earlier batch."""
        return self._running is not None and not self._running.done()

    def health(self) -> dict[str, Any]:
        running = self._busy
        times = sorted(self._latency_us)
        job = self._job
        return {
            "models": [
                {
                    "model_id": f"{model_id:08x}",
                    "runs": f"{e.own_id:08x}",
                    "file": str(e.file),
                    "runtime": e.spec.runtime,
                    "kernels": e.spec.kernels,
                    "policy": e.policy,
                }
                for model_id, e in self._models.items()
            ],
            "worker_pid": self.worker_pid,
            "worker_busy": running,
            "queue_depth": len(job.work) if job is not None and running else 0,
            "queue_size": self._queue_size,
            "inference_us_p50": _percentile(times, 0.50),
            "inference_us_p99": _percentile(times, 0.99),
        }

    def close(self) -> None:
        """Ends the worker: it exits when its pipe closes; one that does not is killed."""
        self._end_worker(grace_s=2.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- the worker process --------------------------------------------------------

    def _spawn(self) -> list[ModelSpec | str]:
        """On the stage's thread: a new worker, and its report of each model."""
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=worker.serve,
            args=(child, self._section.runtime, [f.load for f in self._files]),
            name="tinyml-gateway verify",
            daemon=True,  # ends with the gateway, however it ends
        )
        proc.start()
        child.close()
        try:
            ready = parent.poll(START_TIMEOUT_S)
            specs: list[ModelSpec | str] = parent.recv() if ready else []
        except (EOFError, OSError) as exc:
            proc.join(1.0)
            raise WorkerError(
                f"the verification worker ended while loading its models (exit code "
                f"{proc.exitcode}): {exc!r}"
            ) from None
        if not ready:
            proc.kill()
            raise WorkerError(f"the verification worker did not start in {START_TIMEOUT_S:.0f} s")
        self._proc, self._conn = proc, parent
        return specs

    def _work(self, job: _Job) -> None:
        """On the stage's thread: one batch through the worker, starting a new worker when
        the last one died."""
        try:
            if self._conn is None or self._proc is None or not self._proc.is_alive():
                self._restart()
            assert self._conn is not None
            self._conn.send((job.deadline, job.work))
            results, times = self._conn.recv()
        except (EOFError, OSError, WorkerError) as exc:
            self._c["verify_worker_died"] += 1
            self._failures.warning(
                "verify-worker",
                "the verification worker ended (%r): the batch goes on unverified, and a new "
                "worker starts for the next one",
                exc,
            )
            self._end_worker()
            job.results = [repr(exc)] * len(job.work)
            return
        self._latency_us.extend(times)
        job.results = results

    def _restart(self) -> None:
        self._end_worker()
        specs = self._spawn()
        if any(isinstance(s, str) for s in specs):  # the same files loaded at start
            raise WorkerError("the new worker could not load a model it loaded before")
        self._c["verify_worker_starts"] += 1

    def _end_worker(self, grace_s: float = 0.0) -> None:
        """Closes the worker's pipe, gives it ``grace_s`` to exit, then kills it."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        if conn is not None:
            conn.close()
        if proc is None:
            return
        if grace_s:
            proc.join(grace_s)
        if proc.is_alive():
            proc.kill()
        proc.join(5.0)

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
        work: list[tuple[int, bytes]],
        messages: Sequence[Message],
        out: list[Verdict | None],
    ) -> None:
        job = _Job(work, time.monotonic() + self._wait_s)
        self._job = job
        self._running = asyncio.get_running_loop().run_in_executor(self._pool, self._work, job)
        await asyncio.wait({self._running}, timeout=self._wait_s + ANSWER_MARGIN_S)
        # an answer after this is not used: those events are late
        results = list(job.results) if self._running.done() else []
        for (at, entry), result in zip(slots, results, strict=False):
            msg = messages[at]
            if isinstance(result, str):
                self._failures.warning(
                    "verify-failed",
                    "verification failed on an event of node %s (it goes on unverified): %s",
                    node_hex(msg.header.node_id),
                    result,
                )
                out[at] = unverified(Unverified.FAILED)
            else:
                out[at] = self._judge(msg, entry, result)

    def _judge(self, msg: Message, entry: ModelEntry, scores: Scores) -> Verdict:
        event = msg.body
        assert isinstance(event, Event)
        meta = self.meta(msg.header.node_id)
        policy: Policy = self._groups.get(meta.group or "", entry.policy)
        verdict = judge(
            event.label,
            scores,
            tolerance_steps=self._tolerance + entry.spec.softmax_tie_steps,
            labels=entry.labels if entry.labels is not None else meta.labels,
            policy=policy,
            kernels=entry.spec.kernels,
            model=f"{entry.own_id:08x}",
        )
        if verdict.agreement is False:
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
        if v.agreement is False:
            self._c["events_disagreeing"] += 1
        elif v.agreement is None:
            self._c["events_verify_undecided"] += 1
        if v.drop:
            self._c["events_dropped_disagreeing"] += 1


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 1)
