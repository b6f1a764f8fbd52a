"""The pool suite fails a pool that breaks the contract, one broken rule at a time.

Each mutant is one of taskq-worker's real pools with one public method made wrong; the suite
run on it (in a child pytest session) must fail the test that guards that rule. taskq-worker is
not a dependency of taskq-testing, so these tests need it installed (the workspace has it).
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

pytest.importorskip("taskq_worker.pools.threads")

HEADER = """
import dataclasses

import pytest
from taskq.contracts import JobOutcome
from taskq_worker.pools.prefork import PreforkPool
from taskq_worker.pools.threads import ThreadPool
from taskq_testing.pool import PoolConformance
"""

CASE = """

class Mutant{index}({base}):
{mutant}


class TestMutant{index}(PoolConformance):
    latency = 1.0
    survives_process_exit = {survives}

    @pytest.fixture
    def open_pool(self):
        return Mutant{index}
"""

# name: (pool class, mutant methods, the test that must fail)
MUTANTS = {
    "value-dropped": (
        "ThreadPool",
        "def start(self, on_outcome):\n"
        "    super().start(lambda o: on_outcome(JobOutcome(o.task_id, o.outcome)))",
        "test_apply_runs_the_target_and_reports_done",
    ),
    "outcome-reported-twice": (
        "ThreadPool",
        "def start(self, on_outcome):\n    super().start(lambda o: (on_outcome(o), on_outcome(o)))",
        "test_apply_runs_the_target_and_reports_done",
    ),
    "free-slots-ignore-jobs": (
        "ThreadPool",
        "@property\ndef free_slots(self):\n    return 2",
        "test_free_slots_follow_running_jobs",
    ),
    "soft-limit-ignored": (
        "ThreadPool",
        "def apply(self, job):\n    super().apply(dataclasses.replace(job, soft_time_limit=None))",
        "test_soft_time_limit_raises_inside_the_job",
    ),
    "hard-limit-ignored": (
        "ThreadPool",
        "def apply(self, job):\n    super().apply(dataclasses.replace(job, time_limit=None))",
        "test_hard_time_limit_reports_timeout",
    ),
    "terminate-does-nothing": (
        "ThreadPool",
        "def terminate(self, task_id, signum=None):\n    return True",
        "test_terminate_stops_a_running_job",
    ),
    "stop-never-waits": (
        "ThreadPool",
        "def stop(self, *, wait=True):\n    super().stop(wait=False)",
        "test_stop_with_wait_finishes_running_jobs",
    ),
    "grow-does-nothing": (
        "ThreadPool",
        "def grow(self, n=1):\n    pass",
        "test_grow_and_shrink",
    ),
    "lost-reported-as-done": (
        "PreforkPool",
        "def start(self, on_outcome):\n"
        "    super().start(lambda o: on_outcome(dataclasses.replace(o, outcome='done')))",
        "test_a_job_that_kills_its_process_is_lost",
    ),
}


def test_suite_fails_every_broken_pool(pytester: pytest.Pytester) -> None:
    cases = list(MUTANTS.items())
    pytester.makepyfile(
        test_mutants=HEADER
        + "".join(
            CASE.format(
                index=i,
                base=base,
                mutant=textwrap.indent(mutant, "    "),
                survives=base == "PreforkPool",
            )
            for i, (_, (base, mutant, _)) in enumerate(cases)
        )
    )
    selected = " or ".join(
        f"(TestMutant{i} and {test})" for i, (_, (_, _, test)) in enumerate(cases)
    )
    reports = pytester.inline_run("-p", "no:cacheprovider", "-k", selected)
    outcomes = {
        r.nodeid.split("::")[1]: r.outcome
        for r in reports.getreports("pytest_runtest_logreport")
        if r.when == "call"
    }
    survived = [
        name for i, (name, _) in enumerate(cases) if outcomes.get(f"TestMutant{i}") != "failed"
    ]
    assert len(outcomes) == len(cases)
    assert survived == [], f"the suite passed these broken pools: {survived}"
