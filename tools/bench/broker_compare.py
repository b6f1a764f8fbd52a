"""taskq, Celery and Dramatiq one after another on the same broker, machine and task.

The broker is Redis (``tools/bench redis``) or RabbitMQ (``tools/bench amqp``, ``broker_url``);
results and the task's counter are on Redis either way. The task is a no-op that increments a
Redis counter (``peers.counter``). Each system gets one round, in a Redis database the benchmark
flushes before every round and at the end (on RabbitMQ each system has a queue of its own,
purged before its round):

0. the task alone: ``peers.counter.increment`` called in a loop from this process, no queue,
   with this process's and Redis's CPU read around it (:mod:`task_floor`): the report says
   what that costs per task, the fastest any system could consume on these CPUs, and what
   the consume targets leave per task besides it;
1. publish as a batch: the task ``tasks`` times as one group (Celery ``group().apply_async()``,
   Dramatiq ``group().run()``, taskq ``group().apply_async()``), then purged;
2. publish: ``tasks`` calls of ``delay()`` (Dramatiq ``send()``) from one thread, no worker;
3. consume + execute: start the worker (its default pool, concurrency = CPU count) on those
   queued tasks and time from the first increment to the counter reaching ``tasks``, so start-up
   is excluded (and shown separately); the worker's process tree RSS is sampled meanwhile, and
   the CPU time of that tree and of the local servers (the broker, the counter's Redis) is read
   once the first task has run and again at the last, giving each side's CPU per task;
4. round trip: ``calls`` sequential calls of the result-storing variant, waiting for each result
   through the system's Redis result backend, with the worker still running.

The throughput tasks ignore their results on all three systems; only round trips store them.
``--million`` (or the full run, when the 20k round predicts under 3 minutes) adds taskq alone on
1,000,000 tasks published with ``Publisher.send_many`` (the batch API under a group) in batches of
10,000 (on the Redis broker only).
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import task_floor
from measure import (
    CounterWatch,
    OtherCpu,
    TreeRssSampler,
    cpu_seconds,
    local_broker_pids,
    local_redis_pid,
    percentile,
)
from peers.clients import CLIENTS, Client, TaskqClient
from peers.counter import BROKER_VARIABLE, URL_VARIABLE
from scratch_database import ForeignDatabase, ScratchDatabase
from tables import fixed, mib, rate, ratio, table
from worker_process import BENCH_DIR, WorkerProcess, bench_env

__all__ = ["DEFAULT_AMQP", "DEFAULT_URL", "ForeignDatabase", "failed", "report", "run"]

DEFAULT_URL = "redis://localhost:6379/15"
DEFAULT_AMQP = "amqp://guest:guest@localhost:5672//"
MILLION = 1_000_000
MILLION_CHUNK = 10_000
MILLION_BUDGET_S = 180.0  # the full run adds the million only when predicted under this
WARMUP_CALLS = 5


@dataclass
class Round:
    """One system's figures; ``error`` says why the rest are missing."""

    system: str
    tasks: int
    batch_per_s: float | None = None
    batch_how: str = ""
    publish_per_s: float | None = None
    consume_per_s: float | None = None
    consume_with_startup_per_s: float | None = None
    startup_s: float | None = None
    rtt_p50_ms: float | None = None
    rtt_p99_ms: float | None = None
    peak_rss_bytes: int | None = None
    rss_samples: int = 0
    #: CPU microseconds per task while consuming: the worker's process tree, the local servers.
    worker_cpu_us: float | None = None
    servers_cpu_us: float | None = None
    other_cpus: float | None = None  # CPUs busy with other programs' work, round average
    extra_executions: int | None = None  # executions beyond the tasks sent (redeliveries)
    error: str | None = None
    log_path: str = ""


@dataclass
class MillionRound:
    tasks: int
    publish_per_s: float | None = None
    publish_how: str = ""
    redis_memory_bytes: int | None = None  # used_memory with every task queued
    consume_s: float | None = None
    consume_with_startup_s: float | None = None
    peak_rss_bytes: int | None = None
    other_cpus: float | None = None
    error: str | None = None
    log_path: str = ""


@dataclass
class Result:
    url: str
    broker_url: str
    concurrency: int
    tasks: int
    calls: int
    workdir: str
    rounds: list[Round] = field(default_factory=list)
    million: MillionRound | None = None
    million_note: str = ""
    #: The task's own cost, measured before the rounds (see :mod:`task_floor`).
    floor: task_floor.TaskFloor | None = None


def _start_worker(client: Client, concurrency: int, workdir: Path) -> WorkerProcess:
    log_path = workdir / f"{client.name.lower()}-worker.log"
    worker = WorkerProcess(
        client.worker_argv(concurrency), cwd=BENCH_DIR, env=bench_env(), log_path=log_path
    )
    worker.start()
    return worker


def _consume_timeout(tasks: int) -> float:
    return 120 + tasks / 200  # generous: a slow system is measured, not failed


def _failure(exc: BaseException, worker: WorkerProcess | None) -> str:
    text = "".join(traceback.format_exception(exc)).rstrip()
    if worker is not None:
        text += f"\n--- worker log ({worker.log_path}), last lines ---\n{worker.log_tail()}"
    return text


def run_round(
    make_client: Callable[[], Client], name: str, db: ScratchDatabase, tasks: int, calls: int,
    concurrency: int, workdir: Path,
) -> Round:  # fmt: skip
    db.flush()
    counter = CounterWatch(db.client)
    result = Round(system=name, tasks=tasks)
    servers = local_broker_pids(db.client)
    other_cpu = OtherCpu(servers)
    worker: WorkerProcess | None = None
    client: Client | None = None
    try:
        client = make_client()
        client.publish(1)  # connects and declares, outside the timings
        client.purge()

        started = time.perf_counter()
        result.batch_how = client.publish_batch(tasks, chunk=tasks)
        result.batch_per_s = tasks / (time.perf_counter() - started)
        client.purge()

        started = time.perf_counter()
        client.publish(tasks)
        result.publish_per_s = tasks / (time.perf_counter() - started)

        worker = _start_worker(client, concurrency, workdir)
        result.log_path = str(worker.log_path)
        with TreeRssSampler(worker.pid) as sampler:
            counter.wait_for(1, _consume_timeout(tasks), worker.running)
            cpu = ConsumeCpu(worker.pid, servers, counter.count())
            done_at = counter.wait_for(tasks, _consume_timeout(tasks), worker.running)
            result.worker_cpu_us, result.servers_cpu_us = cpu.per_task(counter.count())
        result.peak_rss_bytes, result.rss_samples = sampler.peak_bytes, sampler.samples
        first_at = counter.first_increment_at()
        result.consume_per_s = tasks / (done_at - first_at)
        result.consume_with_startup_per_s = tasks / (done_at - worker.started_at)
        result.startup_s = first_at - worker.started_at

        for _ in range(WARMUP_CALLS):
            client.round_trip()
        samples: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            client.round_trip()
            samples.append((time.perf_counter() - started) * 1000)
        result.rtt_p50_ms = percentile(samples, 50)
        result.rtt_p99_ms = percentile(samples, 99)
        result.extra_executions = counter.count() - (tasks + WARMUP_CALLS + calls)
    except Exception as exc:
        result.error = _failure(exc, worker)
    finally:
        if worker is not None:
            code = worker.stop()
            if code not in (0, None) and result.error is None:
                result.error = f"the worker exited with {code} on SIGTERM\n{worker.log_tail()}"
        if client is not None:
            client.close()
        result.other_cpus = other_cpu.average_cpus()
    return result


class ConsumeCpu:
    """CPU used while a worker consumes: its process tree, and the local servers."""

    def __init__(self, worker_pid: int, servers: list[int], count: int) -> None:
        self.worker_pid = worker_pid
        self.servers = servers
        self.count = count
        self.worker = cpu_seconds([worker_pid], descendants=True)
        self.server = cpu_seconds(servers)

    def per_task(self, count: int) -> tuple[float | None, float | None]:
        """Microseconds per task since the start, for the tasks run since (``count`` now)."""
        done = count - self.count
        if done <= 0:
            return None, None
        worker = cpu_seconds([self.worker_pid], descendants=True) - self.worker
        server = cpu_seconds(self.servers) - self.server
        return worker / done * 1e6, (server / done * 1e6 if self.servers else None)


def run_million(db: ScratchDatabase, tasks: int, concurrency: int, workdir: Path) -> MillionRound:
    db.flush()
    counter = CounterWatch(db.client)
    result = MillionRound(tasks=tasks)
    other_cpu = OtherCpu(local_broker_pids(db.client))
    worker: WorkerProcess | None = None
    client = TaskqClient()
    try:
        started = time.perf_counter()
        result.publish_how = client.send_many(tasks, chunk=MILLION_CHUNK)
        result.publish_per_s = tasks / (time.perf_counter() - started)
        result.redis_memory_bytes = db.used_memory()

        worker = _start_worker(client, concurrency, workdir)
        result.log_path = str(worker.log_path)
        with TreeRssSampler(worker.pid) as sampler:
            done_at = counter.wait_for(tasks, _consume_timeout(tasks), worker.running)
        result.peak_rss_bytes = sampler.peak_bytes
        result.consume_s = done_at - counter.first_increment_at()
        result.consume_with_startup_s = done_at - worker.started_at
    except Exception as exc:
        result.error = _failure(exc, worker)
    finally:
        if worker is not None:
            worker.stop()
        client.close()
        result.other_cpus = other_cpu.average_cpus()
    return result


def _million_prediction(taskq: Round) -> float | None:
    """Seconds the million would take at the 20k round's rates (None: no rates to go by)."""
    if not taskq.batch_per_s or not taskq.consume_per_s or taskq.startup_s is None:
        return None
    return MILLION / taskq.batch_per_s + MILLION / taskq.consume_per_s + taskq.startup_s


def run(
    url: str, tasks: int = 20_000, calls: int = 1_000, million: bool | None = None,
    broker_url: str | None = None,
) -> Result:  # fmt: skip
    """``million``: True runs it, False skips it, None runs it if predicted under 3 minutes.

    ``broker_url``: another broker than the Redis at ``url`` (RabbitMQ); the million then
    does not run, as it measures the Redis broker.
    """
    concurrency = os.cpu_count() or 1
    # Read by the peer app modules, here and in the workers.
    os.environ[URL_VARIABLE] = url
    if broker_url:
        os.environ[BROKER_VARIABLE] = broker_url
        million = False
    else:
        os.environ.pop(BROKER_VARIABLE, None)
    workdir = Path(tempfile.mkdtemp(prefix="taskq-bench-broker-"))
    result = Result(url=url, broker_url=broker_url or url, concurrency=concurrency,
                    tasks=tasks, calls=calls, workdir=str(workdir))  # fmt: skip
    db = ScratchDatabase(url)
    try:
        db.claim()
        result.floor = task_floor.measure(
            local_redis_pid(db.client), calls=max(calls * 10, 2_000), cpus=concurrency
        )
        for name, make_client in CLIENTS.items():
            result.rounds.append(
                run_round(make_client, name, db, tasks, calls, concurrency, workdir)
            )
        taskq = result.rounds[0]
        predicted = _million_prediction(taskq)
        if million is False and broker_url:
            result.million_note = "not run: it measures the Redis broker (tools/bench redis)"
        elif million is False:
            result.million_note = "not run (--quick; --million runs it)"
        elif million is None and predicted is None:
            result.million_note = "not run: the taskq round gave no rates to predict it from"
        elif million is None and predicted is not None and predicted > MILLION_BUDGET_S:
            result.million_note = (
                f"not run: predicted {predicted:.0f} s from the {tasks:,}-task round, over the "
                f"full run's {MILLION_BUDGET_S:.0f} s budget; --million runs it anyway"
            )
        else:
            if predicted is not None:
                result.million_note = f"predicted {predicted:.0f} s from the {tasks:,}-task round"
            result.million = run_million(db, MILLION, concurrency, workdir)
    finally:
        db.release()
        db.close()
    return result


# -- the report ------------------------------------------------------------------------------


def _metric_rows(rounds: dict[str, Round], tasks: int, calls: int) -> list[list[str]]:
    taskq, celery, dramatiq = rounds["taskq"], rounds["celery"], rounds["dramatiq"]
    rows: list[list[str]] = []

    def higher_is_better(label: str, get: Callable[[Round], float | None]) -> None:
        t, c, d = get(taskq), get(celery), get(dramatiq)
        rows.append([label, rate(t), rate(c), rate(d), ratio(t, c), ratio(t, d)])

    def lower_is_better(
        label: str, get: Callable[[Round], float | None], show: Callable[[float | None], str]
    ) -> None:
        t, c, d = get(taskq), get(celery), get(dramatiq)
        rows.append([label, show(t), show(c), show(d), ratio(c, t), ratio(d, t)])

    higher_is_better(f"publish, {tasks:,} delay() (tasks/s)", lambda r: r.publish_per_s)
    higher_is_better(f"publish, one group of {tasks:,} (tasks/s)", lambda r: r.batch_per_s)
    higher_is_better("consume+execute (tasks/s)", lambda r: r.consume_per_s)
    higher_is_better("  with worker start-up (tasks/s)", lambda r: r.consume_with_startup_per_s)
    lower_is_better("  worker CPU per task, process tree (µs)", lambda r: r.worker_cpu_us, rate)
    lower_is_better("  local servers' CPU per task (µs)", lambda r: r.servers_cpu_us, rate)
    lower_is_better(f"round trip p50, {calls:,} calls (ms)", lambda r: r.rtt_p50_ms, fixed)
    lower_is_better(f"round trip p99, {calls:,} calls (ms)", lambda r: r.rtt_p99_ms, fixed)
    lower_is_better(
        "worker peak RSS, process tree (MiB)",
        lambda r: None if r.peak_rss_bytes is None else float(r.peak_rss_bytes),
        lambda v: mib(None if v is None else int(v)),
    )
    lower_is_better("worker start-up (s)", lambda r: r.startup_s, fixed)
    return rows


def report(result: Result) -> str:
    rounds = {r.system: r for r in result.rounds}
    lines = [
        f"broker {result.broker_url}; results and the counter on Redis {result.url}, a database "
        "flushed before each system's round and at the end",
        f"worker concurrency {result.concurrency} (CPU count), each system's default pool: "
        "Celery -P prefork, Dramatiq --processes (8 threads each), taskq -P prefork",
        "throughput tasks ignore results; round trips store them in each system's Redis "
        "result backend. Ratios: > 1 means taskq is better (rates taskq/peer, times and "
        "memory peer/taskq).",
        "",
        *table(
            ["metric", "taskq", "Celery", "Dramatiq", "taskq/Celery", "taskq/Dramatiq"],
            _metric_rows(rounds, result.tasks, result.calls),
        ),
        "",
        "groups published with:",
        *(f"  {r.system:<9} {r.batch_how or '-'}" for r in result.rounds),
    ]
    others = ", ".join(
        f"{r.system} {r.other_cpus:.2f}" for r in result.rounds if r.other_cpus is not None
    )
    lines.append(
        f"CPUs busy with other programs during each round (of {result.concurrency}; not this "
        f"benchmark, its workers, Redis or the broker): {others}. Well above 0 skews that round."
    )
    for r in result.rounds:
        if r.extra_executions:
            lines.append(f"{r.system}: {r.extra_executions:+,} executions beyond the tasks sent")
    lines.append(f"worker logs: {result.workdir}")
    lines += _floor_lines(result, rounds)
    lines += _million_lines(result)
    for r in result.rounds:
        if r.error:
            lines += ["", f"{r.system} FAILED:", r.error]
    return "\n".join(lines)


def _floor_lines(result: Result, rounds: dict[str, Round]) -> list[str]:
    """What the task costs by itself, and what the consume targets leave besides it."""
    if result.floor is None:
        return []
    celery, dramatiq = rounds["celery"].consume_per_s, rounds["dramatiq"].consume_per_s
    asked = [
        ("10x Celery's consume+execute", None if celery is None else 10 * celery),
        ("4x Dramatiq's", None if dramatiq is None else 4 * dramatiq),
    ]
    spent = [(CLIENTS[r.system].name, _total_cpu(r), r.consume_per_s) for r in result.rounds]
    return ["", *task_floor.report_lines(result.floor, asked, spent)]


def _total_cpu(r: Round) -> float | None:
    if r.worker_cpu_us is None or r.servers_cpu_us is None:
        return None
    return r.worker_cpu_us + r.servers_cpu_us


def _million_lines(result: Result) -> list[str]:
    lines = ["", f"taskq alone, {MILLION:,} no-op tasks: {result.million_note}".rstrip(": ")]
    million = result.million
    if million is None:
        return lines
    consume = million.consume_s
    rows = [
        [f"publish, send_many in batches of {MILLION_CHUNK:,} (tasks/s)",
         rate(million.publish_per_s)],
        ["Redis used_memory with all queued (MiB)", mib(million.redis_memory_bytes)],
        ["consume+execute (s)", fixed(consume)],
        ["consume+execute (tasks/s)", rate(million.tasks / consume if consume else None)],
        ["consume+execute (tasks/min)", rate(million.tasks * 60 / consume if consume else None)],
        ["  with worker start-up (s)", fixed(million.consume_with_startup_s)],
        ["worker peak RSS, process tree (MiB)", mib(million.peak_rss_bytes)],
    ]  # fmt: skip
    lines += table(["metric", "taskq"], rows)
    lines.append(f"published with: {million.publish_how or '-'}")
    if million.other_cpus is not None:
        lines.append(f"CPUs busy with other programs meanwhile: {million.other_cpus:.2f}")
    if million.error:
        lines += ["taskq million FAILED:", million.error]
    return lines


def failed(result: Result) -> bool:
    million_failed = result.million is not None and result.million.error is not None
    return million_failed or any(r.error for r in result.rounds)
