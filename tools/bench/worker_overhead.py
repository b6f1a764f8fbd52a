"""The worker's own cost per task: a real worker on the in-process ``memory://`` broker.

No network and no database: what remains is the worker (fetch, decode, checks, dispatch, the
pool's handoff or IPC, the tracer, result encoding, acks). N no-op tasks are queued, then a
``Worker`` starts in this process (prefork forks its children from here); the time runs from
``worker_ready`` until the broker saw the last acknowledgement. With results, each task's
return value is encoded and stored in the ``memory://`` backend (a prefork child stores into its
own copy, which still pays the encoding); without, the task has ``ignore_result=True``.

Run: ``uv run python tools/bench worker [--pool prefork|threads|solo] [--quick]``; with
``profile`` (from Python: ``run(pools=("prefork",), profile=True)``) the worker thread
runs under cProfile (the consumer; not prefork children) and the top functions are printed.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import logging
import os
import pstats
import resource
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from taskq import TaskQ, plugins, signals
from taskq.contracts import Delivery
from taskq.transports.memory import MemoryTransport
from taskq_worker import Worker


class _AckCounter:
    """Counts the acknowledgements every worker transport of this process sends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked = 0
        self.target = 0
        self.done = threading.Event()

    def add(self, count: int) -> None:
        with self.lock:
            self.acked += count
            if self.acked >= self.target:
                self.done.set()


_counter = _AckCounter()


class _CountingMemoryTransport(MemoryTransport):
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        super().ack(deliveries)
        _counter.add(len(deliveries))


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _round(
    tasks: int, pool: str, results: bool, concurrency: int, profile: bool
) -> tuple[float, float, float]:
    """Tasks per second, and CPU seconds per task: this process and its children, and this
    process alone (the worker's parent, with prefork)."""
    name = uuid.uuid4().hex
    app = TaskQ("bench", broker=f"memory://{name}", backend=f"memory://{name}")

    @app.task(name="bench.noop", ignore_result=not results)
    def noop(i: int) -> int:
        return i

    batch = 10_000
    for start in range(0, tasks, batch):
        app.publisher.send_many(
            [(noop.name, (i,), {}, {}) for i in range(start, min(start + batch, tasks))]
        )
    _counter.acked, _counter.target = 0, tasks
    _counter.done.clear()
    worker = Worker(app, pool=pool, concurrency=concurrency, loglevel="WARNING")
    ready = threading.Event()
    began: list[float] = []

    def on_ready(sender: Any = None, **_: Any) -> None:
        if sender is worker:
            began.append(time.perf_counter())
            began.append(_cpu(resource.RUSAGE_SELF))
            ready.set()

    signals.worker_ready.connect(on_ready)
    profiler = cProfile.Profile() if profile else None
    thread = threading.Thread(
        target=_run_worker, args=(worker, profiler), name="bench-worker", daemon=True
    )
    thread.start()
    try:
        if not ready.wait(60) or not _counter.done.wait(600):
            raise TimeoutError(f"the {pool} worker did not finish {tasks} tasks in time")
        elapsed = time.perf_counter() - began[0]
        cpu = _cpu(resource.RUSAGE_SELF) - began[1]
    finally:
        children_before = _cpu(resource.RUSAGE_CHILDREN)
        worker.stop()
        thread.join(60)
        signals.worker_ready.disconnect(on_ready)
        app.close()
    parent = cpu
    cpu += _cpu(resource.RUSAGE_CHILDREN) - children_before  # prefork children, once reaped
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
        stats.print_stats(40)
        print(out.getvalue())
    return tasks / elapsed, cpu / tasks, parent / tasks


def _run_worker(worker: Worker, profiler: cProfile.Profile | None) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the banner, once per round
        if profiler is None:
            worker.start()
        else:
            profiler.runcall(worker.start)


def run(
    tasks: int = 50_000,
    pools: Sequence[str] = ("solo", "threads", "prefork"),
    rounds: int = 3,
    profile: bool = False,
) -> dict[str, Any]:
    # memory:// in this process counts acknowledgements from now on (it behaves the same).
    plugins.TRANSPORTS.register("memory", _CountingMemoryTransport)
    concurrency = os.cpu_count() or 1
    logging.getLogger("taskq").setLevel(logging.WARNING)
    rates: dict[tuple[str, bool], tuple[float, float, float]] = {}
    for pool in pools:
        for results in (True, False):
            samples = [
                _round(tasks, pool, results, concurrency, profile)
                for _ in range(1 if profile else rounds)
            ]
            best = max(samples, key=lambda sample: sample[0])
            rates[(pool, results)] = (best[0], min(s[1] for s in samples), best[2])
    return {"tasks": tasks, "concurrency": concurrency, "rounds": rounds, "rates": rates}


def report(result: dict[str, Any]) -> str:
    lines = [
        f"taskq worker on memory://, {result['tasks']:,} no-op tasks, concurrency "
        f"{result['concurrency']} (threads, prefork), best of {result['rounds']}",
        "tasks/s, and CPU time per task: worker process and pool children (worker process)",
        f"{'pool':<10}{'results stored':>32}{'ignore_result':>32}",
    ]
    rates: dict[tuple[str, bool], tuple[float, float, float]] = result["rates"]
    for pool in dict.fromkeys(pool for pool, _ in rates):
        cells = [
            f"{rate:>8,.0f}/s {cpu * 1e6:>5,.0f} ({parent * 1e6:>3,.0f}) us/task"
            for rate, cpu, parent in (rates[(pool, stored)] for stored in (True, False))
        ]
        lines.append(f"{pool:<10}" + "".join(f"{cell:>32}" for cell in cells))
    return "\n".join(lines)
