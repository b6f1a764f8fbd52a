"""taskq beside Celery on the same Redis: a group of 10,000 no-op tasks, and a chord of 10,000
no-op header tasks whose body counts their results.

Each system runs in turn against the same scratch database (flushed before its turn and at the
end, see :mod:`scratch_database`), with its own app from ``peers/`` (Redis broker and Redis
result backend; results stored, as a chord needs them) and its own worker: its default pool,
``-P prefork`` at concurrency = CPU count. The worker is started and warmed up first (a small
group and a small chord), so start-up is not timed. Then each workload runs ``repeats`` times:

- **group**: ``group([noop.s()] * N).apply_async()``;
- **chord**: ``chord([noop.s()] * N, count.s()).apply_async()``; the body must return ``N``.

Timed from the call of ``apply_async`` (the signatures are built before):

- *applied*: ``apply_async`` returned (everything published);
- *done*: the last result was stored (the group's latest ``date_done``, or the body's). The
  benchmark waits for it by polling the stored results lightly (a few hundred keys per 20 ms),
  never through a client's ``get()``: on a small machine a client's busy wait takes CPU from
  the worker being timed;
- *in hand*, in runs of their own: ``apply_async`` then the client's ``get()`` (what a user
  waits). Celery's ``get()`` of a chord body checks every header result for an error each time
  it wakes up (``AsyncResult._maybe_reraise_parent_error``), so its cost grows with the square
  of the header; these runs are made once.

Both systems write results in Celery's layout (``celery-task-meta-<id>``, ``date_done`` in
UTC), so *done* is read the same way for both. The report shows the median of the repeats.
Both workloads of one system run one after another on its warm worker; the systems run in turn,
so another program's burst skews one of them only (the report shows how busy the machine was).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import redis
from measure import OtherCpu, local_broker_pids
from peers.clients import CLIENTS, Client
from peers.counter import URL_VARIABLE
from scratch_database import ForeignDatabase, ScratchDatabase
from tables import fixed, ratio, table
from worker_process import BENCH_DIR, WorkerProcess, bench_env

__all__ = ["DEFAULT_URL", "ForeignDatabase", "failed", "report", "run"]

DEFAULT_URL = "redis://localhost:6379/15"
WORKLOADS = ("group", "chord")
WARMUP_SIZE = 200
POLL_WINDOW = 500
POLL_INTERVAL = 0.02
RESULT_KEY = "celery-task-meta-"
READY_TIMEOUT = 60.0


@dataclass
class Timing:
    """One run of a workload, in seconds from the call of ``apply_async``."""

    applied_s: float
    done_s: float | None = None  # runs that wait quietly
    in_hand_s: float | None = None  # runs that wait with the client's get()


@dataclass
class SystemRound:
    system: str
    timings: dict[str, list[Timing]] = field(default_factory=dict[str, list[Timing]])
    other_cpus: float | None = None
    error: str | None = None
    log_path: str = ""

    def median(self, workload: str, get: Callable[[Timing], float | None]) -> float | None:
        found = [v for t in self.timings.get(workload, []) if (v := get(t)) is not None]
        return statistics.median(found) if found else None


@dataclass
class Result:
    url: str
    concurrency: int
    size: int
    repeats: int
    workdir: str
    rounds: list[SystemRound] = field(default_factory=list[SystemRound])


# -- the two systems' canvases ---------------------------------------------------------------


class Canvas(Protocol):
    """One system's group and chord of ``noop`` tasks, built then applied."""

    name: str
    client: Client

    def group(self, size: int) -> Any: ...

    def chord(self, size: int) -> Any: ...

    def member_ids(self, applied: Any) -> list[str]:
        """The ids of an applied group's members."""
        ...


class TaskqCanvas:
    name = "taskq"

    def __init__(self) -> None:
        from peers import taskq_app

        self.module = taskq_app
        self.client = CLIENTS["taskq"]()

    def group(self, size: int) -> Any:
        from taskq.canvas import group

        return group([self.module.noop.s() for _ in range(size)])

    def chord(self, size: int) -> Any:
        from taskq.canvas import chord

        return chord([self.module.noop.s() for _ in range(size)], self.module.count.s())

    def member_ids(self, applied: Any) -> list[str]:
        return [member.id for member in applied.results]


class CeleryCanvas:
    name = "Celery"

    def __init__(self) -> None:
        from peers import celery_app

        self.module: Any = celery_app  # Celery's decorator is untyped
        self.client = CLIENTS["celery"]()

    def group(self, size: int) -> Any:
        from celery import group

        return group([self.module.noop.s() for _ in range(size)])

    def chord(self, size: int) -> Any:
        from celery import chord

        return chord([self.module.noop.s() for _ in range(size)], self.module.count.s())

    def member_ids(self, applied: Any) -> list[str]:
        return [member.id for member in applied.results]


CANVASES: dict[str, Callable[[], Canvas]] = {"taskq": TaskqCanvas, "celery": CeleryCanvas}


# -- running ---------------------------------------------------------------------------------


def _metas(client: redis.Redis, task_ids: Sequence[str]) -> list[dict[str, Any] | None]:
    raw: list[bytes | None] = client.mget([RESULT_KEY + i for i in task_ids])  # pyright: ignore[reportAssignmentType]
    return [None if value is None else json.loads(value) for value in raw]


def _wait_stored(
    client: redis.Redis, task_ids: Sequence[str], timeout: float, worker: WorkerProcess
) -> None:
    """Until every task's result is stored, reading a few hundred of the missing ones per
    poll: members finish roughly in order, so the first missing ones are the ones to watch."""
    deadline = time.monotonic() + timeout
    missing = list(task_ids)
    while missing:
        window = missing[:POLL_WINDOW]
        stored = _metas(client, window)
        missing = [i for i, meta in zip(window, stored, strict=True) if meta is None] + missing[
            len(window) :
        ]
        if not missing:
            return
        if not worker.running():
            raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing):,} results missing after {timeout:.0f} s")
        time.sleep(POLL_INTERVAL)


def _stored_at(client: redis.Redis, task_ids: Sequence[str]) -> float:
    """``time.time()`` of the latest ``date_done`` among these tasks' stored results."""
    latest = 0.0
    for start in range(0, len(task_ids), 1_000):
        chunk = task_ids[start : start + 1_000]
        for task_id, meta in zip(chunk, _metas(client, chunk), strict=True):
            if meta is None:
                raise RuntimeError(f"no result stored for {task_id}")
            latest = max(latest, datetime.fromisoformat(meta["date_done"]).timestamp())
    return latest


def _timeout(size: int) -> float:
    return 120 + size / 50  # generous: a slow system is measured, not failed


def _run_once(
    canvas: Canvas, db: ScratchDatabase, worker: WorkerProcess, workload: str, size: int, *,
    with_get: bool,
) -> Timing:  # fmt: skip
    built = canvas.group(size) if workload == "group" else canvas.chord(size)
    started = time.time()
    applied = built.apply_async()
    timing = Timing(applied_s=time.time() - started)
    ids = canvas.member_ids(applied) if workload == "group" else [applied.id]
    if with_get:
        value = applied.get(timeout=_timeout(size))
        timing.in_hand_s = time.time() - started
    else:
        _wait_stored(db.client, ids, _timeout(size), worker)
        timing.done_s = _stored_at(db.client, ids) - started
        value = applied.get(timeout=_timeout(size))
    expected = [None] * size if workload == "group" else size
    if value != expected:
        raise RuntimeError(f"the {workload} of {size:,} returned {value!r:.200}")
    return timing


def _started_worker(canvas: Canvas, concurrency: int, workdir: Path) -> WorkerProcess:
    log_path = workdir / f"{canvas.name.lower()}-worker.log"
    worker = WorkerProcess(
        canvas.client.worker_argv(concurrency), cwd=BENCH_DIR, env=bench_env(), log_path=log_path
    )
    worker.start()
    return worker


def _warm_up(canvas: Canvas, db: ScratchDatabase, worker: WorkerProcess) -> None:
    """A group and a chord through the worker before anything is timed: its pool's children
    start, connect and import what they need."""
    deadline = time.monotonic() + READY_TIMEOUT
    for workload in WORKLOADS:
        if not worker.running():
            raise RuntimeError(f"the worker exited:\n{worker.log_tail()}")
        _run_once(canvas, db, worker, workload, WARMUP_SIZE, with_get=True)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the warm-up took over {READY_TIMEOUT:.0f} s")


def run_system(
    make_canvas: Callable[[], Canvas], db: ScratchDatabase, size: int, repeats: int,
    concurrency: int, workdir: Path,
) -> SystemRound:  # fmt: skip
    db.flush()
    other_cpu = OtherCpu(local_broker_pids(db.client))
    canvas: Canvas | None = None
    worker: WorkerProcess | None = None
    result = SystemRound(system="?")
    try:
        canvas = make_canvas()
        result.system = canvas.name
        worker = _started_worker(canvas, concurrency, workdir)
        result.log_path = str(worker.log_path)
        _warm_up(canvas, db, worker)
        # A Celery chord's get() takes minutes at 10,000 headers (see above): once is enough.
        for with_get in [False] * repeats + [True]:
            for workload in WORKLOADS:
                timing = _run_once(canvas, db, worker, workload, size, with_get=with_get)
                result.timings.setdefault(workload, []).append(timing)
    except Exception as exc:
        text = "".join(traceback.format_exception(exc)).rstrip()
        if worker is not None:
            text += f"\n--- worker log ({worker.log_path}), last lines ---\n{worker.log_tail()}"
        result.error = text
    finally:
        if worker is not None:
            code = worker.stop()
            if code not in (0, None) and result.error is None:
                result.error = f"the worker exited with {code} on SIGTERM\n{worker.log_tail()}"
        if canvas is not None:
            canvas.client.close()
        result.other_cpus = other_cpu.average_cpus()
    return result


def run(url: str, size: int = 10_000, repeats: int = 3) -> Result:
    concurrency = os.cpu_count() or 1
    os.environ[URL_VARIABLE] = url  # read by the peer app modules, here and in the workers
    workdir = Path(tempfile.mkdtemp(prefix="taskq-bench-canvas-"))
    result = Result(url, concurrency, size, repeats, str(workdir))
    db = ScratchDatabase(url)
    try:
        db.claim()
        for make_canvas in CANVASES.values():
            result.rounds.append(run_system(make_canvas, db, size, repeats, concurrency, workdir))
    finally:
        db.release()
        db.close()
    return result


# -- the report ------------------------------------------------------------------------------


def _rows(result: Result) -> Iterator[list[str]]:
    rounds = {r.system: r for r in result.rounds}
    taskq, celery = rounds.get("taskq"), rounds.get("Celery")
    size = f"{result.size:,}"
    for workload, what in (("group", f"group of {size}"), ("chord", f"chord of {size}")):
        for label, get in (
            ("applied", lambda t: t.applied_s if t.in_hand_s is None else None),
            ("done", lambda t: t.done_s),
            ("in hand", lambda t: t.in_hand_s),
        ):
            t = taskq.median(workload, get) if taskq else None
            c = celery.median(workload, get) if celery else None
            yield [f"{what}: {label} (s)", fixed(t), fixed(c), ratio(c, t)]


def report(result: Result) -> str:
    lines = [
        f"Redis {result.url}: this database is flushed before each system's turn and at the end",
        f"worker -P prefork -c {result.concurrency} (CPU count) for both; no-op tasks whose "
        "results are stored; the chord body counts the header results",
        f"seconds from apply_async, median of {result.repeats} run(s): applied = published, "
        "done = the last result stored (the group's latest, the body's); in hand (one run of "
        "its own): the client's get() returned. Ratio Celery/taskq: > 1 means taskq is faster.",
        "",
        *table(["metric", "taskq", "Celery", "Celery/taskq"], list(_rows(result))),
    ]
    others = ", ".join(
        f"{r.system} {r.other_cpus:.2f}" for r in result.rounds if r.other_cpus is not None
    )
    lines.append(
        f"CPUs busy with other programs during each turn (of {result.concurrency}; not this "
        f"benchmark, its workers or Redis): {others}. Well above 0 skews that turn."
    )
    lines.append(f"worker logs: {result.workdir}")
    for r in result.rounds:
        if r.error:
            lines += ["", f"{r.system} FAILED:", r.error]
    return "\n".join(lines)


def failed(result: Result) -> bool:
    return any(r.error for r in result.rounds)
