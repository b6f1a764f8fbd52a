"""What every pool checks before it runs anything: its options and its jobs."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from taskq.contracts import Pool, PoolJob
from taskq_worker.pools.prefork import PreforkPool
from taskq_worker.pools.solo import SoloPool
from taskq_worker.pools.threads import ThreadPool

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import worker_pool_targets as targets  # noqa: E402

POOLS = [SoloPool, ThreadPool, PreforkPool]


def test_entry_points_name_the_three_pools() -> None:
    found = {ep.name: ep.load() for ep in entry_points(group="taskq.pools")}
    assert found["solo"] is SoloPool
    assert found["threads"] is ThreadPool
    assert found["prefork"] is found["processes"] is PreforkPool


@pytest.mark.parametrize("factory", POOLS)
def test_an_unknown_option_is_a_type_error_naming_it(factory) -> None:
    with pytest.raises(TypeError, match="'max_task_per_child'"):
        factory(1, max_task_per_child=10)


@pytest.mark.parametrize("factory", POOLS)
@pytest.mark.parametrize(
    ("concurrency", "error"),
    [(0, ValueError), (-1, ValueError), (True, TypeError), ("2", TypeError)],
)
def test_concurrency_must_be_a_positive_int(factory, concurrency, error) -> None:
    with pytest.raises(error, match="concurrency"):
        factory(concurrency)


@pytest.mark.parametrize("factory", POOLS)
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_tasks_per_child": 0}, ValueError, "max_tasks_per_child"),
        ({"max_memory_per_child": 1.5}, TypeError, "max_memory_per_child"),
        ({"initializer": "setup"}, TypeError, "initializer"),
    ],
)
def test_bad_option_values_are_refused(factory, options, error, match) -> None:
    with pytest.raises(error, match=match):
        factory(1, **options)


@pytest.mark.parametrize("factory", POOLS)
def test_the_known_options_are_accepted_unset(factory) -> None:
    pool = factory(1, max_tasks_per_child=None, max_memory_per_child=None, initializer=None)
    assert isinstance(pool, Pool)
    pool.stop()


@pytest.mark.parametrize("factory", POOLS)
@pytest.mark.parametrize(
    ("job", "error", "match"),
    [
        ("not a job", TypeError, "PoolJob"),
        (PoolJob(1, targets.add, (1, 2)), TypeError, "task_id"),  # type: ignore[arg-type]
        (PoolJob("t", "add", (1, 2)), TypeError, "target"),  # type: ignore[arg-type]
        (PoolJob("t", targets.add, [1, 2]), TypeError, "args"),  # type: ignore[arg-type]
        (PoolJob("t", targets.add, (1, 2), time_limit=0), ValueError, "time_limit"),
        (PoolJob("t", targets.add, (1, 2), soft_time_limit=-1), ValueError, "soft_time_limit"),
        (PoolJob("t", targets.add, (1, 2), time_limit=float("inf")), ValueError, "time_limit"),
        (PoolJob("t", targets.add, (1, 2), time_limit="5"), TypeError, "time_limit"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_job_is_refused_by_apply(factory, job, error, match) -> None:
    pool, outcomes = factory(1), targets.Outcomes()
    pool.start(outcomes)
    try:
        with pytest.raises(error, match=match):
            pool.apply(job)
        assert pool.free_slots == 1, "a refused job takes no slot"
    finally:
        pool.stop()
    assert outcomes.seen == []


@pytest.mark.parametrize("factory", POOLS)
def test_start_twice_and_apply_before_start_are_refused(factory) -> None:
    pool = factory(1)
    assert pool.free_slots == 0
    with pytest.raises(RuntimeError):
        pool.apply(PoolJob("t", targets.add, (1, 2)))
    pool.start(targets.Outcomes())
    try:
        with pytest.raises(RuntimeError):
            pool.start(targets.Outcomes())
    finally:
        pool.stop()
