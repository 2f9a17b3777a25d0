"""The worker process: every model loaded once, then batches of windows until EOF.

A process, not a thread, because measurement said so (docs/decisions.md): each window
needs the GIL a few times around ``invoke``, and with the event loop busy a thread waits
the interpreter's 5 ms switch interval for it each time, so under load most windows
missed their deadline. In its own process inference never waits for the event loop, a
runtime that crashes on a window takes the worker down but not the gateway (the stage
starts a new one), and the gateway's process never imports numpy.

The protocol on the pipe (pickled tuples, one per message):

- start: the worker sends one entry per model, in order: its :class:`ModelSpec`, or the
  text of why the runtime cannot use it
- a job: the stage sends ``(deadline, [(model, window bytes), ...])``, the deadline on
  ``time.monotonic()`` (one clock for every process of the machine); the worker answers
  ``(results, times_us)``, a result per window it ran in order (its :class:`Scores`, or the text
  of the error the runtime raised) and stops early at the deadline: what is missing is late
"""

from __future__ import annotations

import signal
import time
from multiprocessing.connection import Connection

from gateway.verify.specs import ModelSpec, Scores

ModelLoad = tuple[bytes, str, str]
"""What the worker needs to load a model: (file content, kernels, delegate)."""

Result = Scores | str


def inspect(runtime: str, models: list[ModelLoad]) -> list[ModelSpec | str]:
    """Loads each model as the worker does; for check-config, in its own process."""
    return [spec for _, spec in _load(runtime, models)]


def _load(runtime: str, models: list[ModelLoad]) -> list[tuple[object | None, ModelSpec | str]]:
    from gateway.verify.runtime import ModelError, Runner  # numpy: in this process only

    out: list[tuple[object | None, ModelSpec | str]] = []
    for content, kernels, delegate in models:
        try:
            runner = Runner(content, runtime=runtime, kernels=kernels, delegate=delegate)  # type: ignore[arg-type]
        except ModelError as exc:
            out.append((None, str(exc)))
        else:
            out.append((runner, runner.spec))
    return out


def serve(conn: Connection, runtime: str, models: list[ModelLoad]) -> None:
    """The worker's main: runs until the stage closes its end of the pipe."""
    # Ctrl-C in a terminal reaches the whole process group: the gateway decides when its
    # worker stops, by closing the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from gateway.verify.runtime import Runner

    loaded = _load(runtime, models)
    conn.send([spec for _, spec in loaded])
    runners = [r if isinstance(r, Runner) else None for r, _ in loaded]
    while True:
        try:
            deadline, work = conn.recv()
        except (EOFError, OSError):
            return
        results: list[Result] = []
        times: list[float] = []
        for model, window in work:
            if time.monotonic() > deadline:
                break
            runner = runners[model]
            t0 = time.perf_counter()
            if runner is None:  # the stage sends none: it refuses to start without every model
                results.append("the model is not loaded")
                continue
            try:
                results.append(runner.run(window))
            except Exception as exc:  # noqa: BLE001 - one window a model fails on stops nothing
                results.append(repr(exc))
            times.append((time.perf_counter() - t0) * 1e6)
        conn.send((results, times))
