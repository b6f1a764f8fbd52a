"""Every canvas primitive and nesting, run by real ``taskq worker`` processes: one suite for
every result store that counts chords.

:class:`CanvasWorkflows` holds the tests; a test module subclasses it as ``Test...`` and defines
the ``canvas`` fixture, a :class:`CanvasSetup` for its store (``test_worker_e2e_canvas.py``:
SQLite; ``test_redis_canvas.py`` in taskq-redis: Redis). So the same tests run on every store
and every pool the modules choose, without being written twice. The tasks are
:mod:`canvas_tasks`'s; a body that must run once records its runs in a file every process
sees, whatever the store.

One worker serves a whole module (:attr:`CanvasSetup.worker`); the tests that kill a worker
start their own on a queue of their own (:meth:`CanvasSetup.own_queue`), so the shared one
never sees their tasks.

Tests import this module by path (``sys.path``), as they import :mod:`e2e_support`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from canvas_tasks import KILL_BEFORE_PUBLISHING, make_app, write_entry_module
from e2e_support import TIMEOUT, WorkerProcess, runs, wait_for_runs

from taskq import TaskQ
from taskq.canvas import Signature, chain, chord, group, signature
from taskq.exceptions import ChordError, TaskRevokedError
from taskq.result import AsyncResult, GroupResult
from taskq_protocol import states
from taskq_testing.waiting import wait_until

__all__ = ["CanvasSetup", "CanvasWorker", "CanvasWorkflows", "open_canvas"]

TESTS_DIR = Path(__file__).resolve().parent


class CanvasWorker(WorkerProcess):
    """A started ``taskq worker`` on the canvas app, with its node name."""

    def __init__(self, pool: str, process: subprocess.Popen[bytes], log: Path, node: str):
        super().__init__(pool, process, log)
        self.node = node


@dataclass
class CanvasSetup:
    """A store (broker and results), a directory every process sees, a client app and the
    module's worker on one queue."""

    pool: str
    directory: Path
    broker: str
    backend: str
    queue: str
    settings: dict[str, Any]
    client: TaskQ
    worker: CanvasWorker
    started: list[CanvasWorker] = field(default_factory=list[CanvasWorker])

    def s(self, name: str, *args: Any, **kwargs: Any) -> Signature[Any, Any]:
        return signature(f"canvas.{name}", args, kwargs, app=self.client)

    def task(self, name: str) -> Any:
        return self.client.tasks[f"canvas.{name}"]

    def runs(self, label: str) -> int:
        return len(runs(self.directory, label))

    def start_worker(
        self, queue: str, pool: str | None = None, concurrency: int = 2
    ) -> CanvasWorker:
        """Another worker on ``queue``; stopped with the module's if the test did not."""
        worker = start_canvas_worker(
            self.directory,
            self.broker,
            self.backend,
            queue,
            pool or self.pool,
            concurrency,
            **self.settings,
        )
        self.started.append(worker)
        return worker

    def own_queue(self) -> tuple[str, TaskQ]:
        """A queue no other test uses and a client whose tasks go there."""
        queue = f"{self.queue}-{uuid.uuid4().hex[:8]}"
        client = make_app(self.directory, self.broker, self.backend, queue, **self.settings)
        return queue, client

    def alive(self) -> None:
        assert self.worker.process.poll() is None, self.worker.log_tail()

    def settle(self) -> None:
        """Let whatever was sent before run: two rounds of tasks behind it on the queue, each
        taking longer than a task of these tests, on every process of the pool."""
        for _ in range(2):
            results = [
                self.s("slow", n, f"settle-{uuid.uuid4().hex}", 0.1).delay() for n in range(4)
            ]
            assert [r.get(timeout=TIMEOUT) for r in results] == list(range(4))

    def stop(self) -> None:
        for worker in [*self.started, self.worker]:
            worker.stop()
        self.client.close()


def start_canvas_worker(
    directory: Path,
    broker: str,
    backend: str,
    queue: str,
    pool: str,
    concurrency: int = 2,
    **settings: Any,
) -> CanvasWorker:
    """Start a worker on ``queue`` in its own session and wait until it is ready."""
    module = f"canvas_app_{uuid.uuid4().hex[:8]}"
    write_entry_module(directory, module, broker, backend, queue, **settings)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(TESTS_DIR), *filter(None, [env.get("PYTHONPATH")])]
    )
    node = f"{module}@canvas"
    argv = [sys.executable, "-m", "taskq_cli", "-A", module, "worker", "-P", pool]
    argv += ["-c", str(concurrency), "-Q", queue, "-l", "INFO", "-n", node]
    log = directory / f"{module}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = CanvasWorker(pool, process, log, node)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def open_canvas(
    pool: str,
    directory: Path,
    broker: str,
    backend: str,
    queue: str,
    **settings: Any,
) -> Iterator[CanvasSetup]:
    """The body of a module's ``canvas`` fixture: a worker and a client, stopped after."""
    worker = start_canvas_worker(directory, broker, backend, queue, pool, **settings)
    client = make_app(directory, broker, backend, queue, **settings)
    setup = CanvasSetup(pool, directory, broker, backend, queue, settings, client, worker)
    try:
        yield setup
    finally:
        setup.stop()


def _get(result: AsyncResult[Any] | GroupResult) -> Any:
    return result.get(timeout=TIMEOUT)


def _failure(result: AsyncResult[Any]) -> BaseException:
    """The exception ``result`` ended with (it must have failed)."""
    outcome = result.get(timeout=TIMEOUT, propagate=False)
    assert result.state == states.FAILURE, (result.state, outcome)
    assert isinstance(outcome, BaseException), outcome
    return outcome


class CanvasWorkflows:
    """The canvas over real workers. Subclass it as ``Test...`` beside a ``canvas`` fixture
    giving a :class:`CanvasSetup`."""

    @pytest.fixture(autouse=True)
    def _worker_survives(self, canvas: CanvasSetup) -> Iterator[None]:
        yield
        canvas.alive()

    # -- each primitive --------------------------------------------------------------------

    def test_a_chain_passes_each_result_on(self, canvas: CanvasSetup) -> None:
        last = chain(canvas.s("add", 1, 2), canvas.s("add", 3), canvas.s("add", 4)).delay()
        assert _get(last) == 10
        assert last.parent is not None
        assert _get(last.parent) == 6

    def test_a_chain_built_with_pipes(self, canvas: CanvasSetup) -> None:
        last = (canvas.s("add", 1, 1) | canvas.s("add", 2) | canvas.s("add", 3)).delay()
        assert _get(last) == 7

    def test_a_group_returns_every_result_in_order(self, canvas: CanvasSetup) -> None:
        result = group(canvas.s("add", i, i) for i in range(10)).delay()
        assert isinstance(result, GroupResult)
        assert _get(result) == [2 * i for i in range(10)]
        assert result.join_native(timeout=TIMEOUT) == [2 * i for i in range(10)]

    def test_a_chord_body_runs_once_with_every_result(self, canvas: CanvasSetup) -> None:
        label = uuid.uuid4().hex
        header = [canvas.s("add", i, i) for i in range(8)]
        result = chord(header, canvas.s("counted", label)).delay()
        assert _get(result) == [2 * i for i in range(8)]
        assert isinstance(result.parent, GroupResult)
        assert _get(result.parent) == [2 * i for i in range(8)]
        canvas.settle()
        assert canvas.runs(label) == 1

    def test_a_group_piped_into_a_task_is_a_chord(self, canvas: CanvasSetup) -> None:
        workflow = group(canvas.s("add", 1, 1), canvas.s("add", 2, 2)) | canvas.s("tsum")
        assert isinstance(workflow, chord)
        assert _get(workflow.delay()) == 6

    def test_map(self, canvas: CanvasSetup) -> None:
        result = canvas.task("tsum").map([[1, 2], [3, 4], [5]]).delay()
        assert _get(result) == [3, 7, 5]

    def test_starmap(self, canvas: CanvasSetup) -> None:
        result = canvas.task("add").starmap([(1, 2), (3, 4)]).delay()
        assert _get(result) == [3, 7]

    def test_chunks(self, canvas: CanvasSetup) -> None:
        result = canvas.task("add").chunks([(i, i) for i in range(10)], 3).delay()
        assert isinstance(result, GroupResult)
        assert _get(result) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]

    def test_replace_by_a_task_in_a_chain(self, canvas: CanvasSetup) -> None:
        last = chain(canvas.s("add", 1, 1), canvas.s("replaced_by_task"), canvas.s("add", 5))
        assert _get(last.delay()) == 107

    def test_replace_by_a_chain_and_by_a_group(self, canvas: CanvasSetup) -> None:
        by_chain = (canvas.s("replaced_by_chain", 1) | canvas.s("add", 1)).delay()
        by_group = chain(canvas.s("replaced_by_group", 10), canvas.s("collect")).delay()
        assert _get(by_chain) == 1003
        assert _get(by_group) == [11, 12]

    def test_a_replaced_task_counts_as_its_chord_part(self, canvas: CanvasSetup) -> None:
        header = [canvas.s("replaced_by_task", 1), canvas.s("replaced_by_chain", 2)]
        assert _get(chord(header, canvas.s("collect")).delay()) == [101, 1003]

    # -- nestings --------------------------------------------------------------------------

    def test_a_chain_of_groups(self, canvas: CanvasSetup) -> None:
        """The second group becomes the first one's chord body; a task after it gets the
        list of its results."""
        first = group(canvas.s("add", 1, 1), canvas.s("add", 2, 2))
        second = group(canvas.s("tsum"), canvas.s("collect"))
        last = chain(first, second, canvas.s("tsum")).delay()
        assert _get(last) == 12
        assert _get(chain(first.clone(), second.clone()).delay()) == [6, [2, 4]]

    def test_a_group_of_chains(self, canvas: CanvasSetup) -> None:
        result = group(
            canvas.s("add", 1, 1) | canvas.s("add", 10),
            canvas.s("add", 2, 2) | canvas.s("add", 20) | canvas.s("add", 300),
        ).delay()
        assert _get(result) == [12, 324]

    def test_a_chord_in_a_chain(self, canvas: CanvasSetup) -> None:
        header = [canvas.s("add", 1), canvas.s("add", 2)]
        steps = [canvas.s("add", 1, 2), chord(header, canvas.s("tsum")), canvas.s("add", 100)]
        last = chain(*steps).delay()
        assert _get(last) == 109
        assert last.parent is not None
        assert _get(last.parent) == 9

    def test_a_chord_whose_header_holds_chords(self, canvas: CanvasSetup) -> None:
        label = uuid.uuid4().hex
        inner_one = chord([canvas.s("add", 1, 1), canvas.s("add", 2, 2)], canvas.s("tsum"))
        inner_two = chord([canvas.s("add", 3, 3)], canvas.s("tsum"))
        header = [inner_one, inner_two, canvas.s("add", 4, 4)]
        result = chord(header, canvas.s("counted", label)).delay()
        assert _get(result) == [6, 6, 8]
        canvas.settle()
        assert canvas.runs(label) == 1

    # -- failures, retries, revokes --------------------------------------------------------

    def test_a_failing_header_task_fails_the_body_and_runs_its_errbacks(
        self, canvas: CanvasSetup
    ) -> None:
        label = uuid.uuid4().hex
        workflow = chord(
            [canvas.s("add", 1, 1), canvas.s("fail"), canvas.s("add", 2, 2)],
            canvas.s("counted", label),
        )
        workflow.link_error(canvas.s("errback_new", label))
        workflow.link_error(canvas.s("errback_old", label))
        result = workflow.delay()
        error = _failure(result)
        assert isinstance(error, ChordError)
        assert isinstance(result.parent, GroupResult)
        failed = result.parent.results[1]
        assert str(error) == f"Dependency {failed.id} raised ValueError('boom')"
        wait_for_runs(canvas.directory, f"{label}:{result.id}:ChordError")
        wait_for_runs(canvas.directory, f"{label}:{result.id}")
        canvas.settle()
        assert canvas.runs(label) == 0, "the body ran"

    def test_a_failed_chain_step_fails_the_rest(self, canvas: CanvasSetup) -> None:
        last = chain(canvas.s("add", 1, 1), canvas.s("fail"), canvas.s("add", 1)).delay()
        error = _failure(last)
        assert isinstance(error, ValueError)
        assert str(error) == "boom"

    def test_a_step_that_retries_inside_a_chain(self, canvas: CanvasSetup) -> None:
        label = uuid.uuid4().hex
        steps = [canvas.s("add", 1, 1), canvas.s("flaky", label, 2), canvas.s("add", 10)]
        assert _get(chain(*steps).delay()) == 12
        assert canvas.runs(label) == 3

    def test_a_step_that_retries_inside_a_chord_header(self, canvas: CanvasSetup) -> None:
        label = uuid.uuid4().hex
        header = [canvas.s("flaky", 5, label, 1), canvas.s("add", 2, 2)]
        assert _get(chord(header, canvas.s("collect")).delay()) == [5, 4]
        assert canvas.runs(label) == 2

    def test_a_header_task_revoked_before_it_runs_fails_the_body(self, canvas: CanvasSetup) -> None:
        """As Celery 5.7 does (``mark_as_revoked`` reports the part to the chord, and a
        REVOKED part propagates): the body fails with a ``ChordError`` naming the task."""
        label = uuid.uuid4().hex
        workflow = chord([canvas.s("add", 1, 1), canvas.s("add", 2, 2)], canvas.s("counted", label))
        frozen = workflow.freeze()
        assert isinstance(frozen.parent, GroupResult)
        revoked = frozen.parent.results[1]
        assert isinstance(revoked, AsyncResult)
        canvas.client.control.revoke(revoked.id)
        # The worker handles control requests in order: once it answered this one it has
        # applied the revoke, before the header is even published.
        replies = canvas.client.control.broadcast(
            "revoked", destination=[canvas.worker.node], reply=True, timeout=5, limit=1
        )
        assert revoked.id in replies[0][canvas.worker.node]
        result = workflow.apply_async()
        assert result.id == frozen.id
        error = _failure(result)
        assert isinstance(error, ChordError)
        assert str(error).startswith(f"Dependency {revoked.id} raised TaskRevokedError(")
        assert revoked.state == states.REVOKED
        assert isinstance(revoked.result, TaskRevokedError)
        canvas.settle()
        assert canvas.runs(label) == 0, "the body ran"

    # -- a worker killed during a chord ----------------------------------------------------

    def test_a_worker_killed_during_a_chord_leaves_it_to_complete_once(
        self, canvas: CanvasSetup
    ) -> None:
        """``kill -9`` of the worker and its pool while header tasks run: their messages come
        back after the visibility timeout, a new worker runs them, the body runs once."""
        queue, client = canvas.own_queue()
        try:
            worker = canvas.start_worker(queue)
            label, started = uuid.uuid4().hex, uuid.uuid4().hex
            header = [signature("canvas.slow", (n, started, 0.5), app=client) for n in range(6)]
            result = chord(header, signature("canvas.counted", (label,), app=client)).delay()
            wait_for_runs(canvas.directory, started, 2)
            worker.kill()
            worker = canvas.start_worker(queue)
            assert result.get(timeout=TIMEOUT) == list(range(6))
            assert canvas.runs(started) > 6, "no header task was run again"
            _settle_queue(client)
            assert canvas.runs(label) == 1
            assert worker.terminate() == 0
        finally:
            client.close()

    def test_a_worker_killed_before_sending_the_body_leaves_it_to_the_redelivery(
        self, canvas: CanvasSetup
    ) -> None:
        """The worker whose header task completed the chord dies between claiming it and
        publishing the body; that task's redelivery sends the body, which runs once."""
        queue, client = canvas.own_queue()
        try:
            worker = canvas.start_worker(queue)
            label = uuid.uuid4().hex
            (canvas.directory / KILL_BEFORE_PUBLISHING).write_text("canvas.counted")
            header = [signature("canvas.add", (n, n), app=client) for n in range(4)]
            result = chord(header, signature("canvas.counted", (label,), app=client)).delay()
            wait_until(lambda: worker.process.poll() is not None, TIMEOUT, message="killed")
            assert not (canvas.directory / KILL_BEFORE_PUBLISHING).exists()
            assert result.state == states.PENDING
            worker = canvas.start_worker(queue)
            assert result.get(timeout=TIMEOUT) == [0, 2, 4, 6]
            _settle_queue(client)
            assert canvas.runs(label) == 1
            assert worker.terminate() == 0
        finally:
            (canvas.directory / KILL_BEFORE_PUBLISHING).unlink(missing_ok=True)
            client.close()


def _settle_queue(client: TaskQ) -> None:
    """Two rounds of tasks through ``client``'s queue after whatever was sent before."""
    for _ in range(2):
        results = [client.send_task("canvas.slow", (n, uuid.uuid4().hex, 0.1)) for n in range(4)]
        assert [r.get(timeout=TIMEOUT) for r in results] == list(range(4))
