"""``Task``: a function made callable through the broker, with Celery's options and API.

``@app.task`` turns ``def add(x: int, y: int) -> int`` into a ``Task[[int, int], int]``: the
parameters travel as a ``ParamSpec``, so a type checker rejects ``add.delay(1, "x")`` and
``add.delay(1, 2).get()`` is an ``int``. With ``bind=True`` the first parameter (``self``) is
the task and is not part of the call.
"""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Concatenate,
    Generic,
    NoReturn,
    ParamSpec,
    TypeVar,
    overload,
)

from taskq.context import Request, current_request
from taskq.exceptions import MaxRetriesExceededError, Retry
from taskq_protocol import states

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.canvas import Signature
    from taskq.canvas import maps as canvas_maps
    from taskq.result import AsyncResult, EagerResult


__all__ = ["Task", "P", "R", "backoff_delay"]

P = ParamSpec("P")
R = TypeVar("R")
# s()'s partial application: the first parameter comes from the step before.
A = TypeVar("A")
A2 = TypeVar("A2")
A3 = TypeVar("A3")
P2 = ParamSpec("P2")

_EMPTY_REQUEST = Request()


def backoff_delay(factor: float, retries: int, maximum: float, jitter: bool) -> float:
    """Celery's exponential backoff: ``factor * 2**retries`` capped at ``maximum``; with
    ``jitter``, a random value between 0 and that ("full jitter")."""
    delay = min(maximum, factor * (2**retries))
    return random.uniform(0, delay) if jitter else delay


class Task(Generic[P, R]):
    """A task type. ``@app.task`` makes a subclass per function; one instance per app."""

    #: The registered name, ``module.function`` unless ``name=`` is given.
    name: ClassVar[str] = ""
    app: ClassVar[TaskQ]
    bind: ClassVar[bool] = False
    #: Check call arguments against the function's signature when sending (Celery's default).
    typing: ClassVar[bool | None] = None
    max_retries: ClassVar[int | None] = 3
    default_retry_delay: ClassVar[float] = 180.0
    autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    dont_autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    retry_kwargs: ClassVar[Mapping[str, Any]] = {}
    retry_backoff: ClassVar[bool | float] = False
    retry_backoff_max: ClassVar[float] = 600.0
    retry_jitter: ClassVar[bool] = True
    rate_limit: ClassVar[str | float | None] = None
    time_limit: ClassVar[float | None] = None
    soft_time_limit: ClassVar[float | None] = None
    ignore_result: ClassVar[bool | None] = None
    store_errors_even_if_ignored: ClassVar[bool | None] = None
    acks_late: ClassVar[bool | None] = None
    acks_on_failure_or_timeout: ClassVar[bool | None] = None
    reject_on_worker_lost: ClassVar[bool | None] = None
    track_started: ClassVar[bool | None] = None
    serializer: ClassVar[str | None] = None
    compression: ClassVar[str | None] = None
    queue: ClassVar[str | None] = None
    exchange: ClassVar[str | None] = None
    routing_key: ClassVar[str | None] = None
    priority: ClassVar[int | None] = None
    expires: ClassVar[float | datetime | None] = None
    #: Exceptions expected from this task: logged without a traceback.
    throws: ClassVar[tuple[type[BaseException], ...]] = ()
    trail: ClassVar[bool] = True
    send_events: ClassVar[bool] = True
    resultrepr_maxsize: ClassVar[int] = 1024

    #: Option names ``@app.task(...)`` accepts, besides ``name``, ``base`` and ``bind``.
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "typing",
            "max_retries",
            "default_retry_delay",
            "autoretry_for",
            "dont_autoretry_for",
            "retry_kwargs",
            "retry_backoff",
            "retry_backoff_max",
            "retry_jitter",
            "rate_limit",
            "time_limit",
            "soft_time_limit",
            "ignore_result",
            "store_errors_even_if_ignored",
            "acks_late",
            "acks_on_failure_or_timeout",
            "reject_on_worker_lost",
            "track_started",
            "serializer",
            "compression",
            "queue",
            "exchange",
            "routing_key",
            "priority",
            "expires",
            "throws",
            "trail",
            "send_events",
            "resultrepr_maxsize",
            "shadow_name",
        }
    )

    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The task's body; ``@app.task`` supplies it from the decorated function."""
        raise NotImplementedError(f"{type(self).__name__} must define run()")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the task here and now, like calling the function (no message, no result)."""
        return self.run(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<@task: {self.name} of {self.app.main}>"

    # -- the running request -----------------------------------------------------------------

    @property
    def request(self) -> Request:
        """The message behind the current run (``self.request.id``, ``.retries``, ...)."""
        request = current_request()
        if request is not None and request.task == self.name:
            return request
        return _EMPTY_REQUEST

    # -- sending ---------------------------------------------------------------------------

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send the task with these arguments: ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        link: Signature | Sequence[Signature] | None = None,
        link_error: Signature | Sequence[Signature] | None = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """Send the task with options (``countdown``, ``eta``, ``expires``, ``queue``,
        ``priority``, ``headers``, ``serializer``, ...); eager when ``task_always_eager``."""
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        if self._typing_enabled():
            self.check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return self.apply(
                args, kwargs, task_id=task_id, link=link, link_error=link_error, **options
            )
        return self.app.send_task(
            self.name,
            args,
            kwargs,
            task_id=task_id,
            link=link,
            link_error=link_error,
            shadow=shadow or self.shadow_name(args, kwargs, options),
            task=self,
            **options,
        )

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task in this process and return an EagerResult (Celery's ``apply``)."""
        from taskq.execution import run_eagerly

        return run_eagerly(self, tuple(args or ()), dict(kwargs or {}), options)

    def shadow_name(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> str | None:
        """Override to show another name in logs and monitoring (Celery's ``shadow_name``)."""
        return None

    def _typing_enabled(self) -> bool:
        return self.typing if self.typing is not None else True

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise TypeError now if the call does not fit the task's signature."""
        if not kwargs:
            # The usual call, positional arguments only, needs just a count check: binding
            # costs microseconds per call, a group of 10,000 pays it 10,000 times.
            counts = self.__dict__.get("_positional_counts", False)
            if counts is False:
                counts = self.__dict__["_positional_counts"] = _positional_counts(
                    self._call_signature()
                )
            if counts is not None and counts[0] <= len(args) <= counts[1]:
                return
        signature = self._call_signature()
        if signature is None:  # builtins and C functions: nothing to check
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}{signature}: {exc}") from None

    def _call_signature(self) -> inspect.Signature | None:
        """``inspect.signature(self.run)``, computed once per task (it costs tens of
        microseconds, and a group of 10,000 checks every member's arguments)."""
        cached: inspect.Signature | bool | None = self.__dict__.get("_signature_cache", False)
        if cached is False:
            try:
                cached = inspect.signature(self.run)
            except (TypeError, ValueError):
                cached = None
            self.__dict__["_signature_cache"] = cached
        return cached if isinstance(cached, inspect.Signature) else None

    # -- canvas ------------------------------------------------------------------------------

    @overload
    def s(
        self: Task[Concatenate[A, P2], R], *args: P2.args, **kwargs: P2.kwargs
    ) -> Signature[R, A]: ...
    @overload
    def s(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R, NoReturn]: ...
    @overload
    def s(
        self: Task[Concatenate[A, A2, P2], R], *args: P2.args, **kwargs: P2.kwargs
    ) -> Signature[R, NoReturn]: ...
    @overload
    def s(
        self: Task[Concatenate[A, A2, A3, P2], R], *args: P2.args, **kwargs: P2.kwargs
    ) -> Signature[R, NoReturn]: ...
    def s(self, *args: Any, **kwargs: Any) -> Signature[Any, Any]:
        """A signature of this task; a parent's result is prepended to ``args``.

        Typed for partial application: ``add.s(2)`` is a ``Signature[int, int]`` (it returns
        an int and takes its first argument, an int, from the step before it), ``add.s(1, 2)``
        a ``Signature[int, NoReturn]`` (complete: nothing may be prepended). Up to three
        leading arguments may be left out (an errback gets ``request, exc, traceback``); a
        signature missing more than one does not fit in a chain, which passes one.
        """
        from taskq.canvas import Signature

        return Signature(self.name, args, kwargs, app=self.app)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature[R, object]:
        """An immutable signature: it ignores what the step before it returns."""
        from taskq.canvas import Signature

        return Signature(self.name, args, kwargs, immutable=True, app=self.app)

    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature[R, Any]:
        """A signature with ``apply_async``'s arguments: ``(args, kwargs, **options)``."""
        from taskq.canvas import Signature

        immutable = bool(options.pop("immutable", False))
        return Signature(
            self.name,
            tuple(args or ()),
            dict(kwargs or {}),
            options=options,
            immutable=immutable,
            app=self.app,
        )

    subtask = signature

    def map(self, it: Iterable[Any]) -> canvas_maps.xmap[R]:
        """One message that calls this task for every item of ``it`` in turn (``celery.map``)."""
        from taskq.canvas import Signature, xmap

        return xmap(Signature(self.name, app=self.app), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> canvas_maps.xstarmap[R]:
        """One message that calls this task with each item's elements as arguments."""
        from taskq.canvas import Signature, xstarmap

        return xstarmap(Signature(self.name, app=self.app), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> canvas_maps.chunks[R]:
        """A group of ``starmap`` messages over ``it``, ``n`` items each."""
        from taskq.canvas import Signature, chunks

        return chunks(Signature(self.name, app=self.app), it, n, app=self.app)

    # -- inside a task ---------------------------------------------------------------------

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Send this task again (same id, ``retries`` + 1) and end this run with ``Retry``.

        Past ``max_retries`` it raises ``exc`` (or ``MaxRetriesExceededError``) instead, so the
        task fails with the error that made it retry.
        """
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if request.called_directly:
            # Called as a function: there is no message to send again.
            if exc is not None:
                raise exc
            raise RuntimeError(f"{self.name}: retry() needs a task run from a message")
        if limit is not None and request.retries >= limit:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}: max_retries={limit} reached"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        from taskq.calling import retry_options

        send_options = retry_options(request, countdown=countdown, eta=eta, extra=options)
        call_args = request.args if args is None else list(args)
        call_kwargs = request.kwargs if kwargs is None else dict(kwargs)
        sig = None
        if request.is_eager:
            # Eager runs retry in place: apply() runs this signature next, as Celery does.
            sig = self.signature(call_args, call_kwargs, **send_options)
        else:
            self.app.send_task(self.name, call_args, call_kwargs, task=self, **send_options)
        retry = Retry(exc=exc, when=eta or countdown, is_eager=request.is_eager, sig=sig)
        if throw:
            raise retry
        return retry

    def replace(self, sig: Signature[Any, Any]) -> Any:
        """Replace this run with ``sig``: it takes this task's id, its place in a group or
        chord, its callbacks and errbacks and the rest of its chain, and the run ends here.

        Raises :class:`~taskq.exceptions.Ignore` (the worker then stores nothing for this run:
        the replacement will). Called eagerly, runs ``sig`` here and returns its value.
        ``replaced_task_nesting`` counts how many times a task was replaced.
        """
        from taskq.canvas import chain, group, signature
        from taskq.exceptions import ImproperlyConfigured

        request = self.request
        if "chord" in sig.options:
            raise ImproperlyConfigured(
                "replace", "a signature replacing a task must not be part of a chord"
            )
        if isinstance(sig, chain) and not sig.tasks:
            raise ImproperlyConfigured("replace", "cannot replace a task with an empty chain")
        accumulate = self.app.tasks["celery.accumulate"]
        if isinstance(sig, group):
            # A group becomes a chord, so what follows gets the list of its results.
            sig = sig | accumulate.s(index=0)
        if isinstance(sig, chain) and isinstance(sig.tasks[-1], group):
            steps = list(sig.tasks)
            steps[-1] = steps[-1] | accumulate.s(index=0)
            sig.tasks = steps
        for callback in _signatures(request.callbacks):
            sig.link(callback)
        for errback in _signatures(request.errbacks):
            sig.link_error(errback)
        if isinstance(sig, chain) and "link" in sig.options:
            # The callbacks belong after the last step, not on the chain and its last step both.
            sig.tasks[-1].extend_list_option("link", sig.options.pop("link"))
        sig.freeze(request.id)
        nesting = request.replaced_task_nesting + 1
        sig.set(
            chord=request.chord,
            group_id=request.group,
            group_index=request.group_index,
            root_id=request.root_id,
            replaced_task_nesting=nesting,
        )
        if isinstance(sig, chain):
            for step in sig.tasks:
                step.set(replaced_task_nesting=nesting)
        for raw in reversed(request.chain or []):
            sig = sig | signature(raw, app=self.app).set(replaced_task_nesting=nesting)
        return self.on_replace(sig)

    def on_replace(self, sig: Signature[Any, Any]) -> Any:
        """Send (or, eagerly, run) the replacement; override to add to it, calling this."""
        from taskq.exceptions import Ignore

        if self.request.is_eager:
            return sig.apply().get()
        sig.delay()
        raise Ignore("Replaced by new task")

    def autoretry_delay(self, retries: int) -> float | None:
        """The countdown ``autoretry_for`` uses: backoff when configured, else the default."""
        if not self.retry_backoff:
            return None
        factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
        return backoff_delay(factor, retries, self.retry_backoff_max, self.retry_jitter)

    def should_autoretry(self, exc: BaseException) -> bool:
        return (
            bool(self.autoretry_for)
            and isinstance(exc, self.autoretry_for)
            and not (self.dont_autoretry_for and isinstance(exc, self.dont_autoretry_for))
        )

    def update_state(
        self,
        task_id: str | None = None,
        state: str | None = None,
        meta: Any = None,
        **kwargs: Any,
    ) -> None:
        """Store a state for this task now (``PROGRESS`` with ``meta``, say)."""
        from taskq_protocol import ResultMeta

        request = self.request
        target = task_id or request.id
        if target is None:
            raise RuntimeError(f"{self.name}: update_state() needs a task id")
        self.app.backend.store(
            ResultMeta(
                task_id=target,
                status=state or states.PENDING,
                result=meta,
                group_id=request.group,
                parent_id=request.parent_id,
            ),
            expires=self.app.conf.result_expires,
        )

    def AsyncResult(self, task_id: str) -> AsyncResult[R]:
        from taskq.result import AsyncResult

        return AsyncResult(task_id, app=self.app, task_name=self.name)

    # -- hooks (override in a base class) -----------------------------------------------------

    def before_start(self, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Called in the worker before the task runs."""

    def on_success(
        self, retval: Any, task_id: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        """Called in the worker after the task returned."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: str,
    ) -> None:
        """Called in the worker after the task raised (``einfo`` is the traceback text)."""

    def on_retry(
        self,
        exc: BaseException | None,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: str,
    ) -> None:
        """Called in the worker when the task is retried."""

    def after_return(
        self,
        status: str,
        retval: Any,
        task_id: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        einfo: str | None,
    ) -> None:
        """Called in the worker after every run, whatever its outcome."""


def _positional_counts(signature: inspect.Signature | None) -> tuple[float, float] | None:
    """The fewest and most positional arguments a call without keywords may pass, when that
    count alone decides whether the call binds; None when it does not (a required
    keyword-only parameter) or there is no signature to check."""
    if signature is None:
        return None
    fewest, most = 0, 0.0
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            if parameter.default is parameter.empty:
                fewest += 1
        elif kind is parameter.VAR_POSITIONAL:
            most = math.inf
        elif kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return None
    return (fewest, most)


def _signatures(value: Any) -> list[Signature[Any, Any]]:
    from taskq.canvas.signature import as_signature_list

    return as_signature_list(value) or []


def make_task_class(
    fn: Callable[..., Any],
    name: str,
    base: type[Task[Any, Any]],
    bind: bool,
    options: Mapping[str, Any],
) -> type[Task[Any, Any]]:
    """A ``Task`` subclass whose ``run`` is ``fn``, named and documented like ``fn``."""
    unknown = set(options) - Task.OPTIONS
    if unknown:
        raise TypeError(
            f"@task({', '.join(sorted(unknown))}=...): unknown option for task {name!r}; "
            f"known options: {', '.join(sorted(Task.OPTIONS))}"
        )
    attributes: dict[str, Any] = {
        "name": name,
        "bind": bind,
        "run": fn if bind else staticmethod(fn),
        "__module__": fn.__module__,
        "__doc__": fn.__doc__,
        "__qualname__": getattr(fn, "__qualname__", name),
        "__wrapped__": fn,
        **options,
    }
    return type(fn.__name__, (base,), attributes)
