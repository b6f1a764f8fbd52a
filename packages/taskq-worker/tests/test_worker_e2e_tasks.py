"""End to end, per pool: a real ``taskq worker`` process on SQLite runs what a client sends.

One worker per pool serves every test here (they use unique labels and ids, and wait only for
their own tasks): results, retries, ETA, expiry, time limits, revoke, poison messages. What
kills or stops a worker is in ``test_worker_e2e_crashes.py``.
"""

from __future__ import annotations

import itertools
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ, signature
from taskq.contracts import DEAD_LETTER_REASON_HEADER
from taskq.exceptions import TaskRevokedError, TimeLimitExceeded
from taskq_protocol import states
from taskq_testing.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_support import (
    TIMEOUT,
    WorkerProcess,
    live_children,
    runs,
    start_worker,
    wait_for_runs,
)
from e2e_tasks import make_app
from worker_harness import dead_letters, make_envelope

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; prefork forks")

POOLS = ["solo", "threads", "prefork"]


@dataclass
class Served:
    """A worker of one pool and a client app on the same SQLite file."""

    pool: str
    directory: Path
    worker: WorkerProcess
    client: TaskQ

    def send(self, name: str, *args: Any, **options: Any) -> Any:
        return self.client.send_task(f"e2e.{name}", args, **options)

    def wait_for_state(self, task_id: str, state: str) -> None:
        """Wait until the stored state is ``state``, reading it afresh each time (an
        ``AsyncResult`` keeps the first ready state it saw)."""
        wait_until(
            lambda: self.client.AsyncResult(task_id).state == state,
            TIMEOUT,
            message=f"{task_id} {state}",
        )

    def alive(self) -> None:
        assert self.worker.process.poll() is None, self.worker.log_tail()


@pytest.fixture(scope="module", params=POOLS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    pool: str = request.param
    directory = tmp_path_factory.mktemp(f"e2e-{pool}")
    worker = start_worker(directory, pool)
    client = make_app(directory, set_as_current=False)
    try:
        yield Served(pool, directory, worker, client)
    finally:
        client.close()
        worker.stop()


def label() -> str:
    return uuid.uuid4().hex


def test_a_batch_returns_every_result(served: Served) -> None:
    results = [served.send("add", i, i) for i in range(20)]
    assert [r.get(timeout=TIMEOUT) for r in results] == [2 * i for i in range(20)]
    assert {r.state for r in results} == {states.SUCCESS}


def test_a_retrying_task_succeeds_after_its_countdowns(served: Served) -> None:
    name, countdown = label(), 0.3
    result = served.send("flaky", name, 2, countdown)
    assert result.get(timeout=TIMEOUT) == 2
    starts = [run.at for run in runs(served.directory, name)]
    assert len(starts) == 3
    # The countdown starts when the run retries, after it recorded its start.
    assert all(b - a >= countdown for a, b in itertools.pairwise(starts)), starts


def test_a_countdown_or_an_eta_is_not_run_early(served: Served) -> None:
    early, late = label(), label()
    sent = time.time()
    eta = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    results = [served.send("run", early, countdown=1.2), served.send("run", late, eta=eta)]
    assert [r.get(timeout=TIMEOUT) for r in results] == [early, late]
    [first] = runs(served.directory, early)
    [second] = runs(served.directory, late)
    assert first.at >= sent + 1.2
    assert second.at >= eta.timestamp()


def test_an_expired_task_is_revoked_not_run(served: Served) -> None:
    name = label()
    result = served.send("run", name, expires=datetime.now(timezone.utc) - timedelta(seconds=1))
    assert isinstance(result.get(timeout=TIMEOUT, propagate=False), TaskRevokedError)
    assert result.state == states.REVOKED
    # A later task ran, so the expired one was not merely waiting.
    assert served.send("add", 1, 1).get(timeout=TIMEOUT) == 2
    assert runs(served.directory, name) == []


def test_a_task_past_its_soft_limit_cleans_up(served: Served) -> None:
    result = served.send("soft_limited", label())
    assert result.get(timeout=TIMEOUT) == "cleaned up"


def test_a_task_past_its_hard_limit_fails_and_the_worker_goes_on(served: Served) -> None:
    name = label()
    result = served.send("hard_limited", name)
    error = result.get(timeout=TIMEOUT, propagate=False)
    assert isinstance(error, TimeLimitExceeded), error
    assert result.state == states.FAILURE
    [killed] = runs(served.directory, name)
    # Every slot works again: as many tasks as the pool has run at once.
    concurrency = 1 if served.pool == "solo" else 2
    names = [label() for _ in range(concurrency)]
    results = [served.send("run", n, 0.3) for n in names]
    assert [r.get(timeout=TIMEOUT) for r in results] == names
    if served.pool == "prefork":
        # The child running the task was killed and replaced.
        after = {runs(served.directory, n)[0].pid for n in names}
        assert killed.pid not in after
        wait_until(
            lambda: (
                len(children := live_children(served.worker.pid)) == concurrency
                and killed.pid not in children
            ),
            TIMEOUT,
            message="a new child in place of the killed one",
        )
    served.alive()


def test_a_task_revoked_before_it_runs_never_runs(served: Served) -> None:
    name = label()
    result = served.send("run", name, countdown=1.0)
    result.revoke()
    assert isinstance(result.get(timeout=TIMEOUT, propagate=False), TaskRevokedError)
    assert result.state == states.REVOKED
    assert served.send("add", 2, 2).get(timeout=TIMEOUT) == 4
    assert runs(served.directory, name) == []


def test_revoke_with_terminate_stops_a_running_task(served: Served) -> None:
    name = label()
    # The solo pool cannot stop a task (it runs in the worker itself): there it runs to the end.
    seconds = 1.0 if served.pool == "solo" else 30.0
    result = served.send("run", name, seconds)
    wait_for_runs(served.directory, name)
    result.revoke(terminate=True)
    outcome = result.get(timeout=TIMEOUT, propagate=False)
    if served.pool == "solo":
        assert outcome == name
        assert result.state == states.SUCCESS
    else:
        assert isinstance(outcome, TaskRevokedError), outcome
        # Not at once in the threads pool: see test_a_terminated_task_runs_no_errback.
        served.wait_for_state(result.id, states.REVOKED)
    assert served.send("add", 3, 3).get(timeout=TIMEOUT) == 6
    assert len(runs(served.directory, name)) == 1
    served.alive()


# -- errbacks of tasks the pool stopped -----------------------------------------------------------

#: In the solo and threads pools the task's own tracer sees the exception a pool raises in it
#: (TimeLimitExceeded, TaskRevokedError), records a FAILURE and runs the errbacks; then the
#: worker, told by the pool the job timed out or was terminated, records the task again
#: (taskq.execution.mark_failed / mark_revoked). The prefork pool kills the child first, so only
#: the worker records it.


def _settled(served: Served) -> None:
    """Let everything sent before run: two tasks in a row behind it (the queue is FIFO)."""
    for _ in range(2):
        name = label()
        assert served.send("run", name, 0.2).get(timeout=TIMEOUT) == name


def test_a_task_past_its_hard_limit_runs_its_errback_once(served: Served) -> None:
    errback = signature("e2e.errback", app=served.client)
    result = served.send("hard_limited", label(), link_error=errback)
    assert isinstance(result.get(timeout=TIMEOUT, propagate=False), TimeLimitExceeded)
    wait_for_runs(served.directory, result.id)
    _settled(served)
    assert len(runs(served.directory, result.id)) == 1


def test_a_terminated_task_runs_no_errback(served: Served) -> None:
    if served.pool == "solo":
        pytest.skip("the solo pool cannot terminate a task")
    errback = signature("e2e.errback", app=served.client)
    name = label()
    result = served.send("run", name, 30.0, link_error=errback)
    wait_for_runs(served.directory, name)
    result.revoke(terminate=True)
    served.wait_for_state(result.id, states.REVOKED)
    _settled(served)
    # As in Celery: a revoked task is not a failed one.
    assert runs(served.directory, result.id) == []


def test_poison_messages_are_dead_lettered_and_the_worker_goes_on(served: Served) -> None:
    transport = served.client.transport
    poison = {
        "raw bytes": make_envelope("e2e.add", body=b"\x00\xff\xfe garbage"),
        "bad json": make_envelope("e2e.add", body=b'[[1, 2], {}, {"chain": '),
        "unknown content type": make_envelope(
            "e2e.add", body=b"1,2", content_type="application/x-nobody-knows"
        ),
        "unknown task": make_envelope("e2e.nope", [1, 2]),
    }
    for envelope in poison.values():
        transport.publish("celery", envelope)
    assert served.send("add", 20, 22).get(timeout=TIMEOUT) == 42
    reasons = {
        dead.envelope.headers["id"]: str(dead.envelope.headers[DEAD_LETTER_REASON_HEADER])
        for dead in dead_letters(transport, count=len(poison))
    }
    by_kind = {kind: reasons[envelope.headers["id"]] for kind, envelope in poison.items()}
    assert by_kind["raw bytes"].startswith("cannot decode"), by_kind
    assert by_kind["bad json"].startswith("cannot decode"), by_kind
    assert "ContentDisallowed" in by_kind["unknown content type"], by_kind
    assert "unknown task 'e2e.nope'" in by_kind["unknown task"], by_kind
    log = served.worker.log_text()
    assert f"Task e2e.nope[{poison['unknown task'].headers['id']}] moved to dead-letter" in log
    for envelope in poison.values():
        assert served.client.AsyncResult(envelope.headers["id"]).state == states.PENDING
    assert served.send("add", 1, 2).get(timeout=TIMEOUT) == 3
    served.alive()
