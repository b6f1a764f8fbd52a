"""``tools/bench``'s task floor: what the benchmark's task costs alone, and what a consume
rate asked of taskq leaves besides it."""

from __future__ import annotations

import sys

import pytest

from workspace import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools" / "bench"))

import task_floor  # a script directory, put on the path above
from task_floor import TaskFloor


def test_the_ceiling_is_every_cpu_on_the_task_alone() -> None:
    floor = TaskFloor(calls=1_000, client_us=60.0, server_us=40.0, cpus=2)
    assert floor.per_task_us == 100.0
    assert floor.ceiling_per_s == pytest.approx(20_000.0)


def test_a_rate_leaves_the_cpu_per_task_less_the_task() -> None:
    floor = TaskFloor(calls=1_000, client_us=60.0, server_us=40.0, cpus=2)
    found = task_floor.budgets(floor, [("10x Celery", 10_000.0), ("none", None), ("4x", 25_000.0)])
    assert [(b.what, b.cpu_per_task_us, b.queue_us) for b in found] == [
        ("10x Celery", pytest.approx(200.0), pytest.approx(100.0)),
        ("4x", pytest.approx(80.0), pytest.approx(-20.0)),  # beyond the ceiling: nothing left
    ]


def test_the_report_sets_each_system_beside_the_budgets() -> None:
    floor = TaskFloor(calls=5_000, client_us=60.5, server_us=26.2, cpus=2)
    lines = task_floor.report_lines(
        floor,
        [("10x Celery's consume+execute", 10_390.0)],
        [("taskq", 238.0, 6_800.0), ("Celery", None, None)],
    )
    assert lines[0].startswith("the task alone (5,000 calls of peers.counter.increment")
    assert "60.5 µs of CPU in the caller + 26.2 in Redis = 86.7 µs per task" in lines[0]
    assert "faster than 23,068/s" in lines[0]
    assert lines[1] == (
        "  10x Celery's consume+execute is 10,390/s: 192 µs of CPU per task, 106 of it for "
        "the queue and the worker"
    )
    assert lines[2] == (
        "  taskq spent 151 µs per task besides the task (its worker's and the servers' 238, "
        "less the task's), 1.62 of 2 CPUs busy"
    )
    assert len(lines) == 3  # a round without figures is left out


def test_a_rate_beyond_the_ceiling_leaves_nothing() -> None:
    floor = TaskFloor(calls=1_000, client_us=68.6, server_us=23.0, cpus=2)
    lines = task_floor.report_lines(floor, [("10x Celery's", 21_913.0)], [])
    assert lines[1] == (
        "  10x Celery's is 21,913/s: 91 µs of CPU per task, beyond that ceiling: nothing left "
        "for the queue and the worker"
    )


def test_a_redis_elsewhere_counts_the_caller_only() -> None:
    floor = TaskFloor(calls=1_000, client_us=60.0, server_us=None, cpus=2)
    assert floor.per_task_us == 60.0
    line = task_floor.report_lines(floor, [], [])[0]
    assert "60.0 µs of CPU in the caller + Redis's not counted (it runs elsewhere) = 60.0" in line


@pytest.mark.needs_server("Redis")
def test_measuring_calls_the_task_and_reads_the_servers_cpu(
    bench_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis
    from measure import local_redis_pid
    from peers import counter

    monkeypatch.setenv(counter.URL_VARIABLE, bench_redis_url)
    counter._client_of.cache_clear()  # pyright: ignore[reportPrivateUsage]  (a client per URL)
    client = redis.Redis.from_url(bench_redis_url)
    try:
        client.delete(counter.COUNT_KEY, counter.FIRST_AT_KEY)
        pid = local_redis_pid(client)
        assert pid is not None  # the fixture's server runs here
        floor = task_floor.measure(pid, calls=5_000, cpus=2)
        assert int(client.get(counter.COUNT_KEY) or 0) == task_floor.WARMUP + 5_000
        assert floor.calls == 5_000
        assert floor.client_us > 0
        assert floor.server_us is not None
        assert floor.server_us > 0  # 5,000 commands: well over the 10 ms a CPU-time tick counts
    finally:
        counter._client_of.cache_clear()  # pyright: ignore[reportPrivateUsage]
        client.delete(counter.COUNT_KEY, counter.FIRST_AT_KEY)
        client.close()
