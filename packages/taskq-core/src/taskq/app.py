"""``TaskQ``: the application object, Celery's ``Celery`` under a new name.

It holds the configuration, the registered tasks, and lazily the transport, result backend,
router and publisher. Nothing connects to anything until a message is sent or a result read,
so importing a module that creates an app is free.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Literal, TypeVar, cast, overload

from taskq import context, plugins
from taskq.calling import Publisher
from taskq.config import DEFAULT_SQLITE_URL, Settings
from taskq.contracts import BackendOptions, ResultBackend, Transport
from taskq.exceptions import ImproperlyConfigured, NotRegistered
from taskq.signals import Signal
from taskq.task import P, R, Task, make_task_class

if TYPE_CHECKING:
    from taskq.control import Control
    from taskq.result import AsyncResult, GroupResult
    from taskq.routing import Router

__all__ = ["TaskQ", "TaskRegistry", "shared_task"]

logger = logging.getLogger("taskq.app")
T = TypeVar("T")

# Tasks made with @shared_task, registered with every app (Celery's "shared" tasks).
_shared: list[Callable[[TaskQ], None]] = []
_apps: list[TaskQ] = []


class TaskRegistry(dict[str, Task[Any, Any]]):
    """Registered tasks by name; a missing name says which names are close."""

    def __missing__(self, name: str) -> Task[Any, Any]:
        close = difflib.get_close_matches(name, list(self), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NotRegistered(f"task {name!r} is not registered{hint}")


class TaskQ:
    """The app: ``app = TaskQ("proj", broker="redis://", backend="redis://")``.

    With no broker configured, the broker and the result backend are a SQLite file in the
    working directory (``taskq.sqlite3``), so tasks run without any server.
    """

    def __init__(
        self,
        main: str | None = None,
        broker: str | None = None,
        backend: str | None = None,
        include: Iterable[str] | None = None,
        *,
        config_source: object = None,
        task_cls: type[Task[Any, Any]] | str | None = None,
        set_as_current: bool = True,
        namespace: str | None = None,
        **settings: Any,
    ) -> None:
        self.main = main or "__main__"
        self.conf = Settings()
        self.tasks = TaskRegistry()
        self._lock = threading.RLock()
        self._transport: Transport | None = None
        self._backend: ResultBackend | None = None
        self._router: Router | None = None
        self._control: Control | None = None
        self.publisher = Publisher(self)
        self.on_after_configure = Signal("on_after_configure")
        self.on_after_finalize = Signal("on_after_finalize")
        if config_source is not None:
            self.conf.config_from_object(config_source, namespace=namespace)
        if broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        if include is not None:
            self.conf.include = list(include)
        self.conf.update(settings)
        base = _resolve_task_cls(task_cls) if task_cls is not None else Task
        self.Task = cast(
            "type[Task[Any, Any]]",
            type("Task", (base,), {"app": self, "__module__": base.__module__}),
        )
        self._oid = str(uuid.uuid4())
        self._thread_oids = threading.local()
        from taskq.canvas.builtins import register_builtins

        register_builtins(self)
        for register in list(_shared):
            register(self)
        _apps.append(self)
        if set_as_current:
            context.set_default_app(self)

    def __repr__(self) -> str:
        return f"<TaskQ {self.main} at {id(self):#x}>"

    # -- configuration -----------------------------------------------------------------------

    def config_from_object(
        self, obj: object, namespace: str | None = None, force: bool = False
    ) -> None:
        """Celery's ``config_from_object``: a module path, module, class or mapping."""
        self.conf.config_from_object(obj, namespace=namespace)
        self._reset_connections()
        self.on_after_configure.send(sender=self, source=obj)

    def _reset_connections(self) -> None:
        with self._lock:
            self._router = None

    @property
    def broker_url(self) -> str:
        """The configured broker, or the embedded SQLite default."""
        return self.conf.broker_url or DEFAULT_SQLITE_URL

    @property
    def broker_is_default(self) -> bool:
        return not self.conf.broker_url

    @property
    def backend_url(self) -> str | None:
        """The configured result backend; with an embedded (SQLite or memory) broker and no
        backend configured, the broker's own URL, so results need no extra setup."""
        if self.conf.result_backend:
            return str(self.conf.result_backend)
        if plugins.scheme_of(self.broker_url) in {"sqlite", "memory"}:
            return self.broker_url
        return None

    # -- tasks -------------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        /,
        *,
        name: str | None = ...,
        base: type[Task[Any, Any]] | None = ...,
        bind: Literal[False] = ...,
        **options: Any,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    @overload
    def task(
        self,
        /,
        *,
        name: str | None = ...,
        base: type[Task[Any, Any]] | None = ...,
        bind: Literal[True],
        **options: Any,
    ) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        base: type[Task[Any, Any]] | None = None,
        bind: bool = False,
        **options: Any,
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(bind=True, ...)``."""

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or self.gen_task_name(function.__name__, function.__module__)
            cls = make_task_class(function, task_name, base or self.Task, bind, options)
            return self.register_task(cls)

        return register if fn is None else register(fn)

    def register_task(self, task: Task[Any, Any] | type[Task[Any, Any]]) -> Task[Any, Any]:
        """Register a class-based task (the class or an instance); returns this app's instance."""
        cls = task if isinstance(task, type) else type(task)
        if not cls.name:
            raise ImproperlyConfigured("task", f"{cls.__qualname__} has no name")
        if getattr(cls, "app", None) is not self:
            cls = type(
                cls.__name__,
                (cls,),
                {"app": self, "__module__": cls.__module__, "__qualname__": cls.__qualname__},
            )
        instance = cls()
        self.tasks[cls.name] = instance
        return instance

    def gen_task_name(self, name: str, module: str) -> str:
        """``module.function``; in ``__main__``, the app's main name stands for the module."""
        if module == "__main__" and self.main != "__main__":
            module = self.main
        return f"{module}.{name}"

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        task: Task[Any, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a task by name, registered here or not (Celery's ``send_task``).

        Sent from inside a running task, the result is listed in that task's ``children``
        unless ``add_to_parent=False``.
        """
        from taskq.result import AsyncResult

        if task is None:
            task = self.tasks.get(name)
        add_to_parent = options.pop("add_to_parent", True)
        message = self.publisher.send(
            name, tuple(args or ()), dict(kwargs or {}), options, task=task
        )
        result: AsyncResult[Any] = AsyncResult(message.id, app=self, task_name=name)
        if add_to_parent:
            from taskq.canvas.sending import record_child

            record_child(self, result)
        return result

    def AsyncResult(self, task_id: str, task_name: str | None = None) -> AsyncResult[Any]:
        from taskq.result import AsyncResult

        return AsyncResult(task_id, app=self, task_name=task_name)

    def GroupResult(self, group_id: str, results: Sequence[AsyncResult[Any]] = ()) -> GroupResult:
        from taskq.result import GroupResult

        return GroupResult(group_id, list(results), app=self)

    # -- importing task modules ---------------------------------------------------------------

    def import_task_modules(self) -> list[str]:
        """Import ``imports`` and ``include`` (what a worker does at start)."""
        names = [*self.conf.imports, *self.conf.include]
        for module in names:
            importlib.import_module(module)
        return names

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks",
        force: bool = True,
    ) -> list[str]:
        """Import ``<package>.tasks`` for each package (Django: each installed app)."""
        if packages is None:
            packages = _django_apps()
        elif callable(packages):
            packages = packages()
        found: list[str] = []
        for package in packages:
            module = f"{package}.{related_name}"
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise  # the tasks module exists and itself failed to import something
                continue
            found.append(module)
        return found

    # -- connections ---------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The broker connection, made on first use."""
        with self._lock:
            if self._transport is None:
                url = self.broker_url
                factory = plugins.TRANSPORTS.load(plugins.scheme_of(url))
                transport: Transport = factory(url, self.transport_options())
                transport.connect()
                self._transport = transport
            return self._transport

    @property
    def backend(self) -> ResultBackend:
        """The result store, made on first use; ImproperlyConfigured if there is none."""
        with self._lock:
            if self._backend is None:
                url = self.backend_url
                if url is None:
                    raise ImproperlyConfigured(
                        "result_backend",
                        "no result backend is configured, so results cannot be stored or read. "
                        "Set result_backend, e.g. 'redis://localhost:6379/0' or "
                        "'sqlite:///results.sqlite3'.",
                    )
                factory = plugins.BACKENDS.load(plugins.scheme_of(url))
                backend: ResultBackend = factory(url, self.backend_options())
                self._backend = backend
            return self._backend

    def transport_options(self) -> dict[str, Any]:
        """``broker_transport_options``, plus ``broker_use_ssl`` as the ``ssl`` option."""
        options = dict(self.conf.broker_transport_options)
        if self.conf.broker_use_ssl:
            options.setdefault("ssl", self.conf.broker_use_ssl)
        return options

    def backend_options(self) -> BackendOptions:
        from taskq_serializers import registry

        conf = self.conf
        accept = conf.result_accept_content or conf.accept_content
        return BackendOptions(
            transport_options=_with_ssl(
                conf.result_backend_transport_options, conf.redis_backend_use_ssl
            ),
            serializer=conf.result_serializer,
            accept=registry.accept_content_types(accept),
            expires=conf.result_expires,
            extended=conf.result_extended,
        )

    @property
    def router(self) -> Router:
        with self._lock:
            if self._router is None:
                from taskq.routing import Router

                self._router = Router(self.conf)
            return self._router

    @property
    def control(self) -> Control:
        """Remote control of workers: ``app.control.revoke(id)``, ``ping()``, ..."""
        with self._lock:
            if self._control is None:
                from taskq.control import Control

                self._control = Control(self)
            return self._control

    def revoke(
        self, task_ids: Sequence[str], *, terminate: bool = False, signal: str | None = None
    ) -> None:
        self.control.revoke(list(task_ids), terminate=terminate, signal=signal)

    def current_task_id(self) -> str | None:
        request = context.current_request()
        return None if request is None or request.is_eager else request.id

    def close(self) -> None:
        """Close the broker and backend connections (a new use reopens them)."""
        with self._lock:
            transport, backend = self._transport, self._backend
            self._transport = self._backend = None
        if transport is not None:
            transport.close()
        if backend is not None:
            backend.close()

    # -- identity ----------------------------------------------------------------------------

    @property
    def nodename(self) -> str:
        """``gen<pid>@<host>``: how a client (not a worker) signs the messages it sends."""
        return f"gen{os.getpid()}@{socket.gethostname()}"

    @property
    def thread_oid(self) -> str:
        """A per-app, per-thread, per-process id: Celery's ``reply_to`` on every task message,
        and the name of this thread's remote-control reply queue."""
        pid = os.getpid()
        cached: tuple[int, str] | None = getattr(self._thread_oids, "oid", None)
        # A forked child inherits its parent's thread-local: a fresh id, or both processes
        # would read (and delete) one reply queue.
        if cached is None or cached[0] != pid:
            cached = (pid, str(uuid.uuid5(uuid.UUID(self._oid), f"{pid}-{threading.get_ident()}")))
            self._thread_oids.oid = cached
        return cached[1]


def _resolve_task_cls(spec: type[Task[Any, Any]] | str) -> type[Task[Any, Any]]:
    if isinstance(spec, type):
        return spec
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]


def _django_apps() -> list[str]:
    try:
        from django.apps import apps  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
    except ImportError:
        return []
    configs: list[Any] = list(apps.get_app_configs())  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return [str(config.name) for config in configs]


@overload
def shared_task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def shared_task(
    *, name: str | None = ..., bind: Literal[False] = ..., **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


@overload
def shared_task(
    *, name: str | None = ..., bind: Literal[True], **options: Any
) -> Callable[[Callable[Concatenate[Any, P], R]], Task[P, R]]: ...


def shared_task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """A task registered with every app, for reusable modules (Celery's ``@shared_task``).

    Returns the task of the current app; apps created later register it too.
    """

    def register(function: Callable[..., Any]) -> Task[Any, Any]:
        def add_to(app: TaskQ) -> None:
            app.task(function, **options)

        _shared.append(add_to)
        for app in list(_apps):
            add_to(app)
        app = context.current_app()
        name = options.get("name") or app.gen_task_name(function.__name__, function.__module__)
        return app.tasks[name]

    return register if fn is None else register(fn)


def _with_ssl(options: Mapping[str, Any], use_ssl: Mapping[str, Any] | None) -> dict[str, Any]:
    """Result backend options, plus ``redis_backend_use_ssl`` as the ``ssl`` option."""
    merged = dict(options)
    if use_ssl:
        merged.setdefault("ssl", dict(use_ssl))
    return merged
