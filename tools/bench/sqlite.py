"""Throughput and latency of taskq on its embedded SQLite broker, through real worker processes.

- publish: ``delay()`` calls per second from one client thread.
- consume+execute: a worker (prefork, concurrency = CPU count) started after N no-op tasks were
  queued; tasks per second from its start until the queue is empty and every result stored.
- round trip: ``delay(...).get()`` one after another, p50 and p99 over the calls.

Run: ``uv run python tools/bench sqlite`` (``--quick`` for a short run). Everything happens in a
temporary directory; the worker's log goes to ``worker.log`` there.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

TASKS_MODULE = textwrap.dedent(
    """
    from taskq import TaskQ

    app = TaskQ("bench", broker="sqlite:///{db}")

    @app.task
    def noop(i):
        return i
    """
)


def _start_worker(workdir: Path, concurrency: int, pool: str) -> subprocess.Popen[bytes]:
    log = (workdir / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "taskq_cli", "-A", "bench_tasks", "worker", "-P", pool,
         "-c", str(concurrency), "-l", "WARNING"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(workdir)},
    )  # fmt: skip


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not finish in time; see worker.log")
        time.sleep(0.02)


def run(tasks: int = 20_000, latency_calls: int = 1_000, pool: str = "prefork") -> dict[str, Any]:
    concurrency = os.cpu_count() or 1
    workdir = Path(tempfile.mkdtemp(prefix="taskq-bench-"))
    module_path = workdir / "bench_tasks.py"
    module_path.write_text(TASKS_MODULE.format(db=workdir / "bench.sqlite3"))
    spec = importlib.util.spec_from_file_location("bench_tasks", module_path)
    assert spec is not None
    assert spec.loader is not None
    bench_tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_tasks)
    app, noop = bench_tasks.app, bench_tasks.noop
    started = time.perf_counter()
    results = [noop.delay(i) for i in range(tasks)]
    publish_rate = tasks / (time.perf_counter() - started)

    worker = _start_worker(workdir, concurrency, pool)
    started = time.perf_counter()
    try:
        last = results[-1]
        _wait_for(lambda: app.transport.queue_length("celery") == 0 and last.ready(), 600)
        consumed = time.perf_counter() - started
        # Every result must be there, or the rate means nothing.
        missing = [r.id for r in results if not r.ready()]
        _wait_for(lambda: all(r.ready() for r in results), 60)
        consume_rate = tasks / consumed
        samples: list[float] = []
        for i in range(latency_calls):
            begin = time.perf_counter()
            noop.delay(i).get(timeout=30)
            samples.append((time.perf_counter() - begin) * 1000)
    finally:
        _stop(worker)
        app.close()
    samples.sort()
    return {
        "tasks": tasks,
        "pool": pool,
        "concurrency": concurrency,
        "publish_per_s": publish_rate,
        "consume_per_s": consume_rate,
        "late_results_after_drain": len(missing),
        "latency_ms_p50": statistics.median(samples),
        "latency_ms_p99": samples[int(len(samples) * 0.99) - 1],
        "workdir": str(workdir),
    }


def report(result: dict[str, Any]) -> str:
    return "\n".join([
        f"taskq on sqlite://, {result['tasks']:,} no-op tasks, worker -P {result['pool']} "
        f"-c {result['concurrency']}",
        f"publish (delay), one thread   {result['publish_per_s']:>10,.0f} tasks/s",
        f"consume + execute + store     {result['consume_per_s']:>10,.0f} tasks/s",
        f"round trip delay().get() p50  {result['latency_ms_p50']:>10.2f} ms",
        f"round trip delay().get() p99  {result['latency_ms_p99']:>10.2f} ms",
        f"(worker log: {result['workdir']}/worker.log)",
    ])  # fmt: skip
