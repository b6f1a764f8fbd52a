"""What the benchmark's task costs by itself, and what that leaves the systems under test.

Every system runs the same task, ``peers.counter.increment`` (an ``INCR`` through redis-py),
and that task is not free: its client side costs CPU in the worker's processes and its command
costs CPU in Redis. Called in a loop from this process, with no queue around it, it gives the
floor under every system's CPU per task. On ``cpus`` CPUs no system can consume faster than
``cpus`` seconds of CPU divided by that floor; a rate asked of taskq (10x Celery's, 4x
Dramatiq's) leaves per task ``cpus / rate`` less the floor for everything else: fetching,
dispatching, acknowledging, the broker's side of the queue. The report sets each system's own
figure (its worker's and servers' CPU per task, less the floor) beside those budgets, so a
run says by itself whether a target is within reach on the machine it ran on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from measure import cpu_seconds
from peers import counter

__all__ = ["Budget", "TaskFloor", "budgets", "measure", "report_lines"]

#: Calls of the task before the timed ones (connecting, first use of the code paths).
WARMUP = 200


@dataclass(frozen=True)
class TaskFloor:
    calls: int
    #: CPU microseconds per call: this process (the task's client side) and the Redis server
    #: (None when Redis runs elsewhere: then the floor counts the client side only).
    client_us: float
    server_us: float | None
    cpus: int

    @property
    def per_task_us(self) -> float:
        return self.client_us + (self.server_us or 0.0)

    @property
    def ceiling_per_s(self) -> float:
        """The fastest any system could consume on ``cpus`` CPUs: all of them on the task."""
        return self.cpus * 1e6 / self.per_task_us


@dataclass(frozen=True)
class Budget:
    """A consume rate asked of taskq, and the CPU per task it leaves besides the task."""

    what: str  # "10x Celery"
    rate_per_s: float
    cpu_per_task_us: float  # all the CPUs' time per task at that rate
    queue_us: float  # what is left once the task's own cost is paid (may be negative)


def measure(redis_pid: int | None, calls: int, cpus: int) -> TaskFloor:
    """Call the task ``calls`` times here; ``redis_pid``: the local Redis server, None when
    it is not on this machine (its CPU is then not counted)."""
    for _ in range(WARMUP):
        counter.increment()
    servers = [] if redis_pid is None else [redis_pid]
    own_before, server_before = time.process_time(), cpu_seconds(servers)
    for _ in range(calls):
        counter.increment()
    own = time.process_time() - own_before
    server = None if redis_pid is None else (cpu_seconds(servers) - server_before) / calls * 1e6
    return TaskFloor(calls, own / calls * 1e6, server, cpus)


def budgets(floor: TaskFloor, asked: Sequence[tuple[str, float | None]]) -> list[Budget]:
    """The budget each asked rate leaves (a rate of None, from a failed round, is skipped)."""
    found: list[Budget] = []
    for what, rate in asked:
        if not rate:
            continue
        per_task = floor.cpus * 1e6 / rate
        found.append(Budget(what, rate, per_task, per_task - floor.per_task_us))
    return found


def report_lines(
    floor: TaskFloor,
    asked: Sequence[tuple[str, float | None]],
    spent: Sequence[tuple[str, float | None, float | None]],
) -> list[str]:
    """``asked``: (what, rate) targets; ``spent``: (system, worker + servers CPU per task,
    consume rate) as each round measured them."""
    server = (
        f"{floor.server_us:,.1f} in Redis"
        if floor.server_us is not None
        else "Redis's not counted (it runs elsewhere)"
    )
    lines = [
        f"the task alone ({floor.calls:,} calls of peers.counter.increment from this process, "
        f"no queue): {floor.client_us:,.1f} µs of CPU in the caller + {server} = "
        f"{floor.per_task_us:,.1f} µs per task; on {floor.cpus} CPUs nothing consumes it "
        f"faster than {floor.ceiling_per_s:,.0f}/s",
    ]
    for budget in budgets(floor, asked):
        left = (
            f"{budget.queue_us:,.0f} of it for the queue and the worker"
            if budget.queue_us >= 0.5
            else "beyond that ceiling: nothing left for the queue and the worker"
        )
        lines.append(
            f"  {budget.what} is {budget.rate_per_s:,.0f}/s: {budget.cpu_per_task_us:,.0f} µs "
            f"of CPU per task, {left}"
        )
    for system, total, rate in spent:
        if not total:
            continue
        busy = f", {rate * total / 1e6:.2f} of {floor.cpus} CPUs busy" if rate else ""
        lines.append(
            f"  {system} spent {total - floor.per_task_us:,.0f} µs per task besides the task "
            f"(its worker's and the servers' {total:,.0f}, less the task's){busy}"
        )
    return lines
