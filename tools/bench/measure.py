"""What the Redis benchmark measures with: the shared counter, a worker's memory, percentiles.

- :class:`CounterWatch` reads the counter the tasks increment (``peers.counter``) and waits for
  it to reach a target, so every system is timed the same way: by the side effect of its tasks,
  not by its own bookkeeping (queue lengths, results).
- :class:`OtherCpu` says how busy the machine was with work that is not the benchmark's while a
  round ran: rounds run one after another, so another program's burst skews one system only.
- :class:`TreeRssSampler` sums the RSS of a process and all its descendants every ~50 ms in a
  thread and keeps the peak. Pages shared after a fork count once per process, as ``ps`` shows
  them: the figure is what the tree costs by that measure, not its unique memory.
- :func:`cpu_seconds` is the CPU time (user + system) a worker's process tree, or the broker's
  processes, have used so far: two readings around the consume phase give each system's CPU
  per task, which a shared machine's other load does not change as it changes rates.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence

import psutil
import redis
from peers.counter import COUNT_KEY, FIRST_AT_KEY


class CounterWatch:
    """The tasks' counter in the benchmark's Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def reset(self) -> None:
        self.client.delete(COUNT_KEY, FIRST_AT_KEY)

    def count(self) -> int:
        value = self.client.get(COUNT_KEY)
        return int(value) if value is not None else 0  # pyright: ignore[reportArgumentType]

    def first_increment_at(self) -> float:
        """``time.time()`` of the increment that took the counter from 0 to 1."""
        value = self.client.get(FIRST_AT_KEY)
        if value is None:
            raise RuntimeError("no task has run yet")
        return float(value)  # pyright: ignore[reportArgumentType]

    def wait_for(self, target: int, timeout: float, still_running: Callable[[], bool]) -> float:
        """Poll every 5 ms until the count reaches ``target``; returns ``time.time()`` then.

        ``still_running`` is asked on every poll, so a worker that died fails the wait at once
        instead of after the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.count() >= target:
                return time.time()
            if not still_running():
                raise RuntimeError(f"the worker exited with the count at {self.count():,}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the count was {self.count():,} of {target:,} after {timeout:.0f} s"
                )
            time.sleep(0.005)


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _own_seconds(server_pids: Sequence[int]) -> float:
    # This process and its reaped children: a worker stopped and waited for brings its pool
    # children's time along (each parent waits for its own).
    mine = os.times()
    own = mine.user + mine.system + mine.children_user + mine.children_system
    return own + cpu_seconds(server_pids)


def cpu_seconds(pids: Sequence[int], *, descendants: bool = False) -> float:
    """User + system CPU seconds of ``pids`` (and, with ``descendants``, of every live process
    below them) so far. A process that exited meanwhile no longer counts: read both ends of a
    span while the processes run (a prefork child replaced mid-span loses its share)."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)] if descendants else [root]
        except psutil.Error:
            continue
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


class OtherCpu:
    """CPUs kept busy, on average over a span, by processes other than this one, its (reaped)
    children, and the servers it uses when they run here (their work is the benchmark's)."""

    def __init__(self, server_pids: Sequence[int]) -> None:
        self.server_pids = list(server_pids)
        self._start = (time.monotonic(), _busy_seconds(), _own_seconds(self.server_pids))

    def average_cpus(self) -> float:
        wall, busy, own = self._start
        elapsed = time.monotonic() - wall
        others = (_busy_seconds() - busy) - (_own_seconds(self.server_pids) - own)
        return max(0.0, others / elapsed) if elapsed > 0 else 0.0


def local_redis_pid(client: redis.Redis) -> int | None:
    """The Redis server behind ``client`` if it runs on this machine, else None."""
    pid = int(client.info("server")["process_id"])  # pyright: ignore[reportIndexIssue,reportArgumentType]
    try:
        return pid if "redis" in psutil.Process(pid).name() else None
    except psutil.Error:
        return None


def local_broker_pids(client: redis.Redis) -> list[int]:
    """The local Redis server behind ``client`` and any local RabbitMQ (beam.smp) processes."""
    redis_pid = local_redis_pid(client)
    pids: list[int] = [] if redis_pid is None else [redis_pid]
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "beam.smp":
            pids.append(process.pid)
    return pids


class TreeRssSampler:
    """Peak of the summed RSS of ``pid`` and its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue  # a child that just exited (a prefork child being replaced)
            self.peak_bytes = max(self.peak_bytes, total)
            self.samples += 1
            self._stop.wait(self.interval)


def percentile(samples: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile: the smallest sample with ``percent`` % of them at or below it."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]
