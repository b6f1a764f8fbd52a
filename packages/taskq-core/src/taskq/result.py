"""Task results as Celery's clients read them: ``AsyncResult``, ``ResultSet``, ``GroupResult``.

A result reads the store through a :class:`~taskq.contracts.ResultBackend`; how it waits (a
push from Redis pub/sub, or polling) is the backend's business, in ``backend.wait``. A ready
result never changes (a ``SUCCESS`` is final, see the contract), so its record is fetched once
and kept.

Failures come back as exceptions rebuilt with :func:`taskq_protocol.exception_from_dict`, which
never imports or calls anything a result store names. ``celery.exceptions`` names read as their
``taskq.exceptions`` namesakes, so ``except TaskRevokedError`` works whichever worker stored it.
The traceback text the worker stored travels with a raised exception in two forms: the
``remote_traceback`` attribute, for code, and (Python 3.11+) a note, so the worker's frames
show under the local traceback when it is printed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Generic, NoReturn, Protocol, TypeVar, cast

from taskq import exceptions
from taskq.context import current_app
from taskq.contracts import ResultBackend
from taskq.exceptions import TaskQError, TaskRevokedError, TimeoutError
from taskq_protocol import MalformedMessage, ResultMeta, ResultRef, exception_from_dict, states
from taskq_protocol.exceptions import is_exception_dict

__all__ = [
    "ResultApp",
    "AsyncResult",
    "ResultSet",
    "GroupResult",
    "EagerResult",
    "result_from_tuple",
    "allow_join_result",
    "IncompleteStream",
    "E_WOULDBLOCK",
]

R_co = TypeVar("R_co", covariant=True)

E_WOULDBLOCK = (
    "Never call result.get() within a task! A task that waits for another can deadlock the "
    "worker when every slot is busy waiting. Chain the tasks, or use a chord for a group; if "
    "you are sure it cannot deadlock, pass disable_sync_subtasks=False or wrap the call in "
    "taskq.result.allow_join_result()."
)


class ResultApp(Protocol):
    """What a result needs from the app (``TaskQ`` provides it)."""

    @property
    def backend(self) -> ResultBackend:
        """The result store; raises ImproperlyConfigured when none is configured."""
        ...

    def revoke(
        self, task_ids: Sequence[str], *, terminate: bool = False, signal: str | None = None
    ) -> None: ...

    def current_task_id(self) -> str | None:
        """The id of the task running in this thread (not eagerly), if any."""
        ...


class IncompleteStream(TaskQError):
    """``iterdeps()``/``collect()`` reached a result that is not ready yet."""


class _JoinPolicy(threading.local):
    allowed = False


_join_policy = _JoinPolicy()


@contextmanager
def allow_join_result() -> Generator[None, None, None]:
    """Let ``get()`` wait inside a task, in this thread, for the ``with`` block (Celery's name)."""
    previous = _join_policy.allowed
    _join_policy.allowed = True
    try:
        yield
    finally:
        _join_policy.allowed = previous


def _assert_will_not_block(app: ResultApp) -> None:
    if not _join_policy.allowed and app.current_task_id() is not None:
        raise RuntimeError(E_WOULDBLOCK)


# -- stored results as values --------------------------------------------------------------------


def _taskq_names(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Celery worker stores ``celery.exceptions.X``; read it as ``taskq.exceptions.X``."""
    name = data.get("exc_type")
    if data.get("exc_module") == "celery.exceptions" and name in exceptions.__all__:
        return {**data, "exc_module": "taskq.exceptions"}
    return data


def _decode(meta: ResultMeta) -> Any:
    """``meta.result`` as Celery's clients see it: the exception for exception states."""
    value = meta.result
    if meta.status in states.EXCEPTION_STATES and is_exception_dict(value):
        value = exception_from_dict(_taskq_names(cast(Mapping[str, Any], value)))
    if meta.status == states.REVOKED and not isinstance(value, TaskRevokedError):
        if isinstance(value, BaseException):
            value = TaskRevokedError(*value.args)
        else:
            value = TaskRevokedError("revoked" if value is None else value)
    return value


def _remote_exception(meta: ResultMeta) -> BaseException:
    """The exception to raise for a failed meta, carrying the worker's traceback text.

    Rebuilt from the stored form on every call, so raising it twice does not pile one
    traceback (or note) onto another.
    """
    exc = _decode(meta)
    if not isinstance(exc, BaseException):
        return TaskQError(f"task {meta.task_id} ended in {meta.status} with {exc!r}")
    if meta.traceback and "remote_traceback" not in exc.__dict__:
        exc.__dict__["remote_traceback"] = meta.traceback
        if sys.version_info >= (3, 11):
            exc.add_note(f"Remote traceback of task {meta.task_id}:\n{meta.traceback.rstrip()}")
    return exc


class AsyncResult(Generic[R_co]):
    """The result of one task: ``add.delay(1, 2)`` returns an ``AsyncResult[int]``.

    Without ``app`` it uses the current app (the last made), as Celery does; ``backend``
    overrides the app's result store (a task's own ``backend``).
    """

    def __init__(
        self,
        id: str,
        *,
        app: ResultApp | None = None,
        backend: ResultBackend | None = None,
        task_name: str | None = None,
        parent: AsyncResult[Any] | GroupResult | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ValueError(f"AsyncResult needs a task id, got {id!r}")
        self.id = id
        self.task_name = task_name
        self.parent = parent
        #: Set for a task sent with ``ignore_result``: nothing will be stored, so ``get()``
        #: returns ``None`` at once instead of waiting forever.
        self.ignored = False
        self._app = app
        self._backend = backend
        self._ready_meta: ResultMeta | None = None
        self._ready_value: Any = None

    # -- where it lives ---------------------------------------------------------------------

    @property
    def app(self) -> ResultApp:
        if self._app is None:
            self._app = current_app()
        return self._app

    @property
    def backend(self) -> ResultBackend:
        return self._backend if self._backend is not None else self.app.backend

    def _meta(self) -> ResultMeta:
        """The stored record (PENDING when there is none), kept once it is ready."""
        meta = self._ready_meta
        if meta is None:
            meta = self.backend.get(self.id) or ResultMeta(self.id)
            self.cache(meta)
        return meta

    @property
    def cached_meta(self) -> ResultMeta | None:
        """The ready record, once read; ``None`` until then."""
        return self._ready_meta

    def cache(self, meta: ResultMeta) -> bool:
        """Keep ``meta`` if it is ready (a ready result never changes); say whether it is.

        For readers that fetched it themselves, like a join's single ``backend.wait``.
        """
        if not meta.ready:
            return False
        if self._ready_meta is None:
            self._ready_value = _decode(meta)
            self._ready_meta = meta
        return True

    # -- waiting ------------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        follow_parents: bool = True,
    ) -> R_co:
        """Wait for the task and return its value; re-raise its exception if it failed.

        ``timeout`` (seconds) raises :class:`~taskq.exceptions.TimeoutError`; the task goes
        on. With ``propagate=False`` a failed task's exception is returned, not raised. With
        ``follow_parents`` a failed parent (an earlier step of a chain, which means this one
        will never run) raises its error instead of waiting; the parents are checked every
        ``interval`` seconds, which is the only use of ``interval``.
        """
        if self.ignored:
            return cast(R_co, None)
        if disable_sync_subtasks:
            _assert_will_not_block(self.app)
        parents = list(self._parents()) if follow_parents and propagate else []
        meta = self._wait(timeout, interval, parents)
        if propagate and meta.status in states.PROPAGATE_STATES:
            raise self._exception(meta)
        return cast(R_co, self._ready_value)

    wait = get

    def _wait(
        self, timeout: float | None, interval: float, parents: list[AsyncResult[Any] | GroupResult]
    ) -> ResultMeta:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            parents = _raise_for_parents(parents)
            if self._ready_meta is not None:
                return self._ready_meta
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = remaining
            if parents:
                step = interval if remaining is None else min(interval, remaining)
            meta = self.backend.wait([self.id], step).get(self.id)
            if meta is not None and self.cache(meta):
                return meta
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} was not ready after {timeout}s")

    def _exception(self, meta: ResultMeta) -> BaseException:
        return _remote_exception(meta)

    def _parents(self) -> Iterator[AsyncResult[Any] | GroupResult]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def maybe_throw(
        self, propagate: bool = True, callback: Callable[[str, Any], object] | None = None
    ) -> Any:
        """Raise the task's exception if it failed or was revoked; else return its value."""
        meta = self._meta()
        if propagate and meta.status in states.PROPAGATE_STATES:
            raise self._exception(meta)
        value = self.result
        if callback is not None:
            callback(self.id, value)
        return value

    maybe_reraise = maybe_throw

    def throw(self) -> NoReturn:
        """Raise the exception this result holds (FAILURE, REVOKED, or RETRY's cause)."""
        meta = self._meta()
        if meta.status not in states.EXCEPTION_STATES:
            raise ValueError(f"task {self.id} is {meta.status}: it holds no exception to raise")
        raise self._exception(meta)

    # -- state ----------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Finished: SUCCESS, FAILURE or REVOKED (RETRY is not: the task will run again)."""
        return self._meta().ready

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def exists(self) -> bool:
        """Whether the store holds a record: PENDING-and-sent versus unknown or forgotten."""
        return self.backend.get(self.id) is not None

    @property
    def state(self) -> str:
        return self._meta().status

    status = state

    @property
    def result(self) -> Any:
        """The return value; for FAILURE, RETRY and REVOKED, the exception."""
        meta = self._meta()
        return self._ready_value if meta is self._ready_meta else _decode(meta)

    info = result

    @property
    def traceback(self) -> str | None:
        return self._meta().traceback

    @property
    def date_done(self) -> datetime | None:
        return self._meta().date_done

    @property
    def name(self) -> str | None:
        """The task's name as stored (``result_extended``), else as given when sent."""
        return self._meta().name or self.task_name

    @property
    def args(self) -> Any:
        return self._meta().args

    @property
    def kwargs(self) -> Any:
        return self._meta().kwargs

    @property
    def worker(self) -> str | None:
        return self._meta().worker

    @property
    def retries(self) -> int | None:
        return self._meta().retries

    @property
    def queue(self) -> str | None:
        return self._meta().queue

    # -- the graph ------------------------------------------------------------------------------

    @property
    def children(self) -> list[AsyncResult[Any] | GroupResult]:
        """Results of the tasks this one sent (callbacks, the next chain step, subtasks)."""
        return [_from_ref(ref, self._app, self._backend) for ref in self._meta().child_refs()]

    def iterdeps(
        self, intermediate: bool = False
    ) -> Iterator[tuple[AsyncResult[Any] | GroupResult | None, AsyncResult[Any] | GroupResult]]:
        """``(parent, node)`` over this result and its children, breadth first.

        A node that is not ready raises :class:`IncompleteStream` unless ``intermediate``.
        """
        queue: deque[tuple[AsyncResult[Any] | GroupResult | None, AsyncResult[Any] | GroupResult]]
        queue = deque([(None, self)])
        while queue:
            parent, node = queue.popleft()
            yield parent, node
            if node.ready():
                queue.extend((node, child) for child in node.children)
            elif not intermediate:
                raise IncompleteStream(f"{node!r} is not ready")

    def collect(
        self, intermediate: bool = False, **get_options: Any
    ) -> Iterator[tuple[AsyncResult[Any] | GroupResult, Any]]:
        """``(result, value)`` for this result and every result below it."""
        for _, node in self.iterdeps(intermediate=intermediate):
            yield node, node.get(**get_options)

    def get_leaf(self) -> Any:
        """The value of the last result ``iterdeps()`` reaches."""
        value = None
        for _, node in self.iterdeps():
            value = node.get()
        return value

    def as_ref(self) -> ResultRef:
        return ResultRef(self.id, None if self.parent is None else self.parent.as_ref())

    def as_tuple(self) -> list[Any]:
        """Celery's result tuple, ``[[id, parent_tuple | None], None]`` (lists, as in JSON)."""
        return self.as_ref().as_tuple()

    # -- acting on it ---------------------------------------------------------------------------

    def forget(self) -> None:
        """Delete the stored result, and its parents', as Celery does."""
        self._ready_meta = None
        self._ready_value = None
        if self.parent is not None:
            self.parent.forget()
        self.backend.forget(self.id)

    def revoke(self, terminate: bool = False, signal: str | None = None) -> None:
        """Tell every worker to skip this task (and, with ``terminate``, to stop it)."""
        self.app.revoke([self.id], terminate=terminate, signal=signal)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return cast(AsyncResult[Any], other).id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __str__(self) -> str:
        return self.id


def _raise_for_parents(
    parents: list[AsyncResult[Any] | GroupResult],
) -> list[AsyncResult[Any] | GroupResult]:
    """Raise the error of the earliest failed parent; return the parents still running.

    A parent that succeeded can no longer fail, so it is dropped and not read again.
    """
    running: list[AsyncResult[Any] | GroupResult] = []
    for parent in reversed(parents):  # the root first, as Celery reports it
        if parent.ready():
            parent.maybe_throw()
        else:
            running.append(parent)
    return running[::-1]


class ResultSet:
    """Several results read together: ``join`` waits for all and returns their values in order."""

    def __init__(
        self,
        results: Iterable[AsyncResult[Any] | GroupResult] = (),
        *,
        app: ResultApp | None = None,
    ) -> None:
        self.results: list[AsyncResult[Any] | GroupResult] = list(results)
        self._app = app

    @property
    def app(self) -> ResultApp:
        if self._app is None:
            self._app = self.results[0].app if self.results else current_app()
        return self._app

    # -- membership -----------------------------------------------------------------------------

    def add(self, result: AsyncResult[Any] | GroupResult) -> None:
        """Add a result; one already a member is not added twice."""
        if result not in self.results:
            self.results.append(result)

    def remove(self, result: AsyncResult[Any] | GroupResult | str) -> None:
        """Remove a result (or the result with that id); KeyError if it is not a member."""
        try:
            self.results.remove(cast(Any, result))
        except ValueError:
            raise KeyError(result) from None

    def discard(self, result: AsyncResult[Any] | GroupResult | str) -> None:
        if result in self.results:
            self.results.remove(cast(Any, result))

    def update(self, results: Iterable[AsyncResult[Any] | GroupResult]) -> None:
        for result in results:
            self.add(result)

    def clear(self) -> None:
        self.results.clear()

    def _leaves(self) -> Iterator[AsyncResult[Any]]:
        """Every task result, nested groups flattened."""
        for result in self.results:
            if isinstance(result, ResultSet):
                yield from result._leaves()
            else:
                yield result

    # -- state ----------------------------------------------------------------------------------

    def ready(self) -> bool:
        return all(result.ready() for result in self.results)

    def waiting(self) -> bool:
        return any(not result.ready() for result in self.results)

    def successful(self) -> bool:
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        return any(result.failed() for result in self.results)

    def completed_count(self) -> int:
        """How many succeeded (Celery counts only successes as completed)."""
        return sum(1 for result in self.results if result.successful())

    def maybe_throw(
        self, callback: Callable[[str, Any], object] | None = None, propagate: bool = True
    ) -> None:
        for result in self.results:
            result.maybe_throw(propagate=propagate, callback=callback)

    # -- waiting --------------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], object] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """The values of every result, in order (:meth:`join_native`)."""
        return self.join_native(timeout, propagate, interval, callback, disable_sync_subtasks)

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], object] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Wait for each result in turn and return the values in order.

        ``timeout`` bounds the whole join. With ``callback``, each ``(id, value)`` goes to it
        instead of the returned list. With ``propagate``, the first failure in order raises.
        """
        if disable_sync_subtasks:
            _assert_will_not_block(self.app)
        deadline = None if timeout is None else time.monotonic() + timeout
        values: list[Any] = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = result.get(
                timeout=remaining,
                propagate=propagate,
                interval=interval,
                disable_sync_subtasks=False,
            )
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def join_native(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], object] | None = None,
        disable_sync_subtasks: bool = True,
    ) -> list[Any]:
        """Like :meth:`join`, in a single ``backend.wait`` for every task id.

        Every result is read through the first one's backend (Celery has the same limit).
        ``interval`` is accepted for Celery's signature; the backend decides how it waits.
        """
        if disable_sync_subtasks:
            _assert_will_not_block(self.app)
        leaves = list(self._leaves())
        pending = {leaf.id: leaf for leaf in leaves if leaf.cached_meta is None}
        if pending:
            got = leaves[0].backend.wait(list(pending), timeout)
            late = [tid for tid, leaf in pending.items() if not _kept(leaf, got.get(tid))]
            if late:
                raise TimeoutError(
                    f"{len(late)} of {len(leaves)} tasks were not ready after {timeout}s "
                    f"(first: {late[0]})"
                )
        values: list[Any] = []
        for result in self.results:
            # Every task is cached ready now, so this neither waits nor reads the store.
            value = result.get(timeout=0, propagate=propagate, disable_sync_subtasks=False)
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    def iter_native(
        self, timeout: float | None = None, interval: float = 0.5
    ) -> Iterator[tuple[str, ResultMeta]]:
        """``(task_id, meta)`` for every task as it becomes ready, checking each ``interval``.

        Nested groups are flattened to their tasks.
        """
        leaves = list(self._leaves())
        pending: dict[str, AsyncResult[Any]] = {}
        for leaf in leaves:
            if leaf.cached_meta is not None:
                yield leaf.id, leaf.cached_meta
            else:
                pending[leaf.id] = leaf
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = interval if remaining is None else min(interval, remaining)
            got = leaves[0].backend.wait(list(pending), step)
            for task_id in [tid for tid in pending if _kept(pending[tid], got.get(tid))]:
                yield task_id, cast(ResultMeta, pending.pop(task_id).cached_meta)
            if pending and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(pending)} tasks were not ready after {timeout}s")

    # -- acting on them -------------------------------------------------------------------------

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def revoke(self, terminate: bool = False, signal: str | None = None) -> None:
        """Revoke every task in the set (nested groups included) in one command."""
        self.app.revoke([leaf.id for leaf in self._leaves()], terminate=terminate, signal=signal)

    def __iter__(self) -> Iterator[AsyncResult[Any] | GroupResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> AsyncResult[Any] | GroupResult:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    __hash__ = None  # type: ignore[assignment]  # mutable: compared by members, not hashable

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"


def _kept(leaf: AsyncResult[Any], meta: ResultMeta | None) -> bool:
    return meta is not None and leaf.cache(meta)


class GroupResult(ResultSet):
    """The results of a ``group``, under the group's id; ``save()`` stores it for ``restore()``."""

    def __init__(
        self,
        id: str,
        results: Iterable[AsyncResult[Any] | GroupResult] = (),
        *,
        parent: AsyncResult[Any] | GroupResult | None = None,
        app: ResultApp | None = None,
    ) -> None:
        super().__init__(results, app=app)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list[AsyncResult[Any] | GroupResult]:
        return list(self.results)

    def as_ref(self) -> ResultRef:
        return ResultRef(
            self.id,
            None if self.parent is None else self.parent.as_ref(),
            tuple(result.as_ref() for result in self.results),
        )

    def as_tuple(self) -> list[Any]:
        """Celery's group tuple, ``[[id, parent_tuple | None], [child tuples]]``."""
        return self.as_ref().as_tuple()

    def save(self, backend: ResultBackend | None = None) -> None:
        """Store the group's members, so ``GroupResult.restore(id)`` can rebuild it."""
        store = backend if backend is not None else self.app.backend
        store.save_group(self.id, self.as_tuple())

    def delete(self, backend: ResultBackend | None = None) -> None:
        store = backend if backend is not None else self.app.backend
        store.delete_group(self.id)

    @classmethod
    def restore(
        cls,
        id: str,
        *,
        app: ResultApp | None = None,
        backend: ResultBackend | None = None,
    ) -> GroupResult | None:
        """The group saved under ``id``, or ``None`` if none was (or it expired)."""
        store = backend if backend is not None else (app or current_app()).backend
        raw = store.restore_group(id)
        if raw is None:
            return None
        ref = ResultRef.from_tuple(raw, f"group {id}")
        if ref.children is None or ref.id != id:
            raise MalformedMessage(f"group {id}", f"stored value is not this group: {raw!r:.200}")
        return cast(GroupResult, _from_ref(ref, app, backend))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return (other.id, other.results, other.parent) == (self.id, self.results, self.parent)
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __bool__(self) -> bool:
        return True  # an empty group is still a group (``if result.parent`` must not skip it)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __str__(self) -> str:
        return self.id


class EagerResult(AsyncResult[R_co]):
    """The result of ``task.apply()``: already known, so no store and no waiting.

    ``get()`` re-raises the original exception (with its real traceback), and is allowed
    inside a task: it cannot deadlock a worker, since nothing waits.
    """

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
        *,
        parent: AsyncResult[Any] | GroupResult | None = None,
        app: ResultApp | None = None,
    ) -> None:
        super().__init__(id, app=app, task_name=name, parent=parent)
        self._eager = ResultMeta(
            id,
            status=state,
            result=ret_value,
            traceback=traceback,
            name=name,
            date_done=datetime.now(timezone.utc),
        )
        self.cache(self._eager)

    def _meta(self) -> ResultMeta:
        return self._eager

    def _exception(self, meta: ResultMeta) -> BaseException:
        value = _decode(meta)
        if isinstance(value, BaseException):
            return value
        return TaskQError(f"task {meta.task_id} ended in {meta.status} with {value!r}")

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        follow_parents: bool = True,
    ) -> R_co:
        meta = self._eager
        if propagate and meta.status in states.PROPAGATE_STATES:
            raise self._exception(meta)
        return cast(R_co, self.result)

    wait = get

    @property
    def children(self) -> list[AsyncResult[Any] | GroupResult]:
        return []

    def exists(self) -> bool:
        return True

    def forget(self) -> None:
        """Nothing is stored, so nothing is forgotten."""

    def revoke(self, terminate: bool = False, signal: str | None = None) -> None:
        """Mark it REVOKED: the task already ran, so only the result changes (as Celery 5.7)."""
        self._eager = ResultMeta(
            self.id, status=states.REVOKED, result=TaskRevokedError("revoked"), name=self.name
        )
        self._ready_meta = None
        self.cache(self._eager)


def result_from_tuple(
    value: object, app: ResultApp | None = None
) -> AsyncResult[Any] | GroupResult:
    """A result from Celery's result tuple (or a :class:`ResultRef`); results pass through."""
    if isinstance(value, (AsyncResult, GroupResult)):
        return cast(AsyncResult[Any] | GroupResult, value)
    ref = value if isinstance(value, ResultRef) else ResultRef.from_tuple(value)
    return _from_ref(ref, app, None)


def _from_ref(
    ref: ResultRef, app: ResultApp | None, backend: ResultBackend | None
) -> AsyncResult[Any] | GroupResult:
    parent = None if ref.parent is None else _from_ref(ref.parent, app, backend)
    if ref.children is None:
        return AsyncResult(ref.id, app=app, backend=backend, parent=parent)
    members = [_from_ref(child, app, backend) for child in ref.children]
    return GroupResult(ref.id, members, parent=parent, app=app)
