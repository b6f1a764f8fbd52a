"""Where a task message goes: Celery's ``task_routes`` and ``task_queues``, in plain data.

A call's destination is decided per key (``queue``, ``exchange``, ``routing_key``,
``priority``), first found wins, in Celery's order:

1. the options given to ``apply_async`` (or ``send_task``);
2. the task's own attributes (``@app.task(queue=...)``);
3. the routers of ``task_routes``, in order; the first that answers (anything but ``None``)
   is the only one asked;
4. the defaults (``task_default_queue``, ``task_default_priority``, ...).

One refinement over Celery: ``exchange`` and ``routing_key`` are only taken from the level
that chose the queue or a higher one. Celery merges them key by key, so a router's routing key
could travel with a queue that ``apply_async`` named, and on AMQP the message would land in the
router's queue instead of the one the caller asked for.

Direct exchanges publish to the anonymous exchange ``""`` with the queue name as routing key,
as Celery does, unless both an exchange and a routing key were given explicitly.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from taskq.contracts import QueueSpec
from taskq.exceptions import ImproperlyConfigured, QueueNotFound

__all__ = ["Route", "Router"]

#: The keys a route decides; any other key a router returns is passed on in ``Route.options``.
ROUTING_KEYS = ("queue", "exchange", "exchange_type", "routing_key", "priority")
_DESTINATION_KEYS = ("exchange", "exchange_type", "routing_key")

# ``task_queues`` entries written as dicts (Celery's ``Queue.from_dict`` form). The kombu
# options below them only matter to AMQP declarations taskq does not make from this table;
# they are accepted so a Celery configuration loads unchanged.
_QUEUE_DICT_KEYS = frozenset(
    {"name", "exchange", "exchange_type", "routing_key", "binding_key", "queue_arguments",
     "arguments", "max_priority"}
)  # fmt: skip
_IGNORED_KOMBU_KEYS = frozenset(
    {"durable", "auto_delete", "exclusive", "no_ack", "alias", "no_declare",
     "exchange_durable", "exchange_auto_delete", "delivery_mode", "consumer_arguments",
     "binding_arguments", "exchange_arguments"}
)  # fmt: skip

#: What a router is called with: ``(name, args, kwargs, options, task=task)``.
RouterFunc = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Route:
    """Where one message goes, with the queue it goes to (to declare before publishing)."""

    queue: str
    exchange: str
    routing_key: str
    priority: int | None
    spec: QueueSpec
    #: Other options the winning router returned (``expires``, ``serializer``, ...). Celery
    #: merges them into the call's options, under the ones the caller gave.
    options: Mapping[str, Any] = field(default_factory=dict[str, Any])


class Router:
    """Routes tasks by an app's configuration (``app.conf`` or any mapping of settings).

    Building it reads and checks ``task_queues`` and ``task_routes``, importing routers named
    by dotted path, so a bad setting fails when the app first sends, naming the setting.
    """

    def __init__(self, conf: Mapping[str, Any]) -> None:
        self.default_queue: str = conf.get("task_default_queue") or "celery"
        self.default_exchange: str = conf.get("task_default_exchange") or self.default_queue
        self.default_exchange_type: str = conf.get("task_default_exchange_type") or "direct"
        self.default_routing_key: str = conf.get("task_default_routing_key") or self.default_queue
        self.create_missing: bool = bool(conf.get("task_create_missing_queues", True))
        self.max_priority: int | None = _check_priority(
            conf.get("task_queue_max_priority"), "task_queue_max_priority"
        )
        self.default_priority: int | None = _check_priority(
            conf.get("task_default_priority"), "task_default_priority"
        )
        self._routers = _prepare_routers(conf.get("task_routes"))
        declared = [self._complete(q) for q in _read_queues(conf.get("task_queues"))]
        if not declared:
            declared = [
                self._complete(
                    QueueSpec(
                        self.default_queue,
                        exchange=self.default_exchange,
                        exchange_type=self.default_exchange_type,
                        routing_key=self.default_routing_key,
                    )
                )
            ]
        self._declared: dict[str, QueueSpec] = {}
        for spec in declared:
            if spec.name in self._declared:
                raise ImproperlyConfigured("task_queues", f"queue {spec.name!r} is declared twice")
            self._declared[spec.name] = spec
        # Queues made on first use (task_create_missing_queues); reads and setdefault on a
        # dict are atomic, so threads sending at once agree on one spec per name.
        self._created: dict[str, QueueSpec] = {}
        # Decided routes, by task name and the routing options of the call and the task. Only
        # when every router answers from the task name alone (no router, or task_routes
        # tables): a router function may look at the arguments.
        self._cacheable = all(isinstance(r, _MapRouter) for r in self._routers)
        self._decided: dict[tuple[Any, ...], Route] = {}

    @property
    def answers_from_names(self) -> bool:
        """Whether a route depends only on the task's name and the routing options, never on
        the call's arguments (no router functions, only ``task_routes`` tables)."""
        return self._cacheable

    # -- queues --------------------------------------------------------------------------------

    def queues(self) -> list[QueueSpec]:
        """The queues ``task_queues`` declares, or the default queue when it declares none.

        As in Celery, a ``task_queues`` that omits ``task_default_queue`` does not get it added:
        a worker consumes what is listed.
        """
        return list(self._declared.values())

    def queue(self, name: str) -> QueueSpec:
        """The queue called ``name``: declared, or created when missing queues may be."""
        spec = self._declared.get(name) or self._created.get(name)
        if spec is not None:
            return spec
        if not self.create_missing:
            known = ", ".join(sorted(self._declared))
            raise QueueNotFound(
                f"queue {name!r} is not in task_queues (declared: {known}) and "
                "task_create_missing_queues is off; declare it in task_queues or turn "
                "task_create_missing_queues on"
            )
        created = self._complete(QueueSpec(name, exchange=name, routing_key=name))
        return self._created.setdefault(name, created)

    def select(self, names: str | Iterable[str]) -> list[QueueSpec]:
        """The queues a worker consumes with ``-Q a,b``; no names means every declared queue."""
        wanted = _names(names)
        return [self.queue(name) for name in wanted] if wanted else self.queues()

    def exclude(
        self, names: str | Iterable[str], among: Sequence[QueueSpec] | None = None
    ) -> list[QueueSpec]:
        """``among`` (by default the declared queues) without the ones ``-X a,b`` names.

        A name that is no queue at all is an error: it is most likely a typo, and ignoring it
        would consume the very queue the operator meant to leave alone.
        """
        pool = self.queues() if among is None else list(among)
        dropped = set(_names(names))
        known = {q.name for q in pool} | set(self._declared) | set(self._created)
        unknown = sorted(dropped - known)
        if unknown:
            raise QueueNotFound(f"cannot exclude {', '.join(map(repr, unknown))}: no such queue")
        return [q for q in pool if q.name not in dropped]

    # -- routing -------------------------------------------------------------------------------

    def route(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        task_options: Mapping[str, Any] | None = None,
        *,
        task: object = None,
    ) -> Route:
        """Where a call of ``task_name`` goes. ``task`` is handed to callable routers."""
        key = self._cache_key(task_name, options, task_options) if self._cacheable else None
        if key is not None:
            decided = self._decided.get(key)
            if decided is not None:
                return decided
        route = self._route(task_name, args, kwargs, options, task_options, task)
        if key is not None:
            if len(self._decided) >= _DECIDED_MAX:
                self._decided.clear()
            self._decided[key] = route
        return route

    @staticmethod
    def _cache_key(
        task_name: str, options: Mapping[str, Any] | None, task_options: Mapping[str, Any] | None
    ) -> tuple[Any, ...] | None:
        """What a route depends on when routers answer from the name: the routing options;
        None when one is not a plain name or number (a queue object, say)."""
        key: list[Any] = [task_name]
        for level in (options, task_options):
            if level:
                for name in ROUTING_KEYS:
                    value = level.get(name)
                    if value is not None and type(value) not in (str, int):
                        return None
                    key.append(value)
            else:
                key += _NO_ROUTING
        return tuple(key)

    def _route(
        self,
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
        task_options: Mapping[str, Any] | None,
        task: object,
    ) -> Route:
        explicit = _present(options)
        attributes = _present(task_options)
        routed = self._ask_routers(task_name, args, kwargs or {}, {**attributes, **explicit}, task)
        levels = (explicit, attributes, routed)
        chosen = next((i for i, level in enumerate(levels) if "queue" in level), len(levels))
        if chosen < len(levels):
            spec = self._queue_from(levels[chosen]["queue"], _LEVEL_NAMES[chosen])
        else:
            spec = self.queue(self.default_queue)
        # exchange and routing key belong to the queue: only the level that chose it, or a
        # higher one, may set them.
        destination = levels[: chosen + 1]
        exchange, exchange_type = _exchange_name_and_type(
            _first(destination, "exchange"), "exchange"
        )
        exchange_type = _first(destination, "exchange_type") or exchange_type or spec.exchange_type
        routing_key = _first(destination, "routing_key")
        if routing_key is not None and not isinstance(routing_key, str):
            raise ValueError(f"routing_key must be a string, got {routing_key!r}")
        if exchange_type == "direct" and not (exchange and routing_key):
            exchange, routing_key = "", spec.name
        else:
            exchange = exchange or spec.exchange or self.default_exchange
            routing_key = routing_key or spec.routing_key or self.default_routing_key
        priority = self.default_priority
        for level, where in zip(levels, _LEVEL_NAMES, strict=True):
            if "priority" in level:
                priority = _check_priority(level["priority"], where)
                break
        extra = {k: v for k, v in routed.items() if k not in ROUTING_KEYS}
        return Route(spec.name, exchange, routing_key, priority, spec, extra)

    def _ask_routers(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: dict[str, Any],
        task: object,
    ) -> dict[str, Any]:
        for router in self._routers:
            answer = router(name, args, kwargs, options, task=task)
            if answer is not None:
                return _present(_as_route(answer, f"router {router!r} for task {name!r}"))
        return {}

    def _queue_from(self, value: Any, where: str) -> QueueSpec:
        if isinstance(value, str):
            return self.queue(value)
        return self._complete(_queue_spec(value, where), where)

    def _complete(self, spec: QueueSpec, where: str = "task_queues") -> QueueSpec:
        """Fill in what Celery fills in: the default exchange, the routing key, max priority."""
        exchange, exchange_type = spec.exchange, spec.exchange_type
        if not exchange:
            exchange, exchange_type = self.default_exchange, self.default_exchange_type
        arguments = dict(spec.arguments)
        max_priority = spec.max_priority
        if max_priority is None:
            max_priority = arguments.get("x-max-priority", self.max_priority)
        max_priority = _check_priority(max_priority, where)
        if max_priority is not None:
            arguments.setdefault("x-max-priority", max_priority)
        return QueueSpec(
            spec.name,
            exchange=exchange,
            exchange_type=exchange_type,
            routing_key=spec.routing_key or spec.name,
            arguments=arguments,
            max_priority=max_priority,
        )


_LEVEL_NAMES = ("apply_async options", "task options", "task_routes")
_NO_ROUTING = (None,) * len(ROUTING_KEYS)
#: Decided routes kept per router; past this many (task names times option sets) it starts over.
_DECIDED_MAX = 4096
_SETTINGS = frozenset(
    {"task_routes", "task_queues", "task_default_priority", "task_queue_max_priority"}
)


def _present(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options that are set: ``None`` means "not given" at every level, as in Celery."""
    return {} if not values else {k: v for k, v in values.items() if v is not None}


def _first(levels: Sequence[Mapping[str, Any]], key: str) -> Any:
    return next((level[key] for level in levels if key in level), None)


def _names(names: str | Iterable[str]) -> list[str]:
    items = names.split(",") if isinstance(names, str) else names
    return list(dict.fromkeys(n.strip() for n in items if n.strip()))


def _invalid(where: str, problem: str) -> ValueError:
    """A bad setting names the setting; a bad call argument is a plain ValueError."""
    if where in _SETTINGS:
        return ImproperlyConfigured(where, problem)
    return ValueError(f"{where}: {problem}")


def _check_priority(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise _invalid(where, f"priority must be a whole number from 0 to 255, got {value!r}")
    return value


def _exchange_name_and_type(value: Any, where: str) -> tuple[str, str | None]:
    """An exchange given as a name or as an object like ``kombu.Exchange``."""
    if value is None or isinstance(value, str):
        return value or "", None
    name = getattr(value, "name", None)
    if not isinstance(name, str):
        raise _invalid(where, f"an exchange must be a name or an exchange object, got {value!r}")
    kind = getattr(value, "type", None)
    return name, kind if isinstance(kind, str) and kind else None


def _is_queue_object(value: object) -> bool:
    return isinstance(value, QueueSpec) or (
        not isinstance(value, (str, Mapping)) and isinstance(getattr(value, "name", None), str)
    )


def _as_route(answer: object, where: str) -> Mapping[str, Any]:
    """A router's answer as a route: a dict, a queue name, or a queue object."""
    if isinstance(answer, str) or _is_queue_object(answer):
        return {"queue": answer}
    if isinstance(answer, Mapping):
        route = cast(Mapping[str, Any], answer)
        queue = route.get("queue")
        if queue is not None and not isinstance(queue, str) and not _is_queue_object(queue):
            raise ImproperlyConfigured(
                "task_routes", f"{where} names queue {queue!r}; expected a name or a queue"
            )
        return route
    raise ImproperlyConfigured(
        "task_routes", f"{where} returned {answer!r}; expected a dict, a queue name or None"
    )


# -- task_queues ---------------------------------------------------------------------------------


def _read_queues(value: Any) -> list[QueueSpec]:
    """``task_queues``: a list of queues, or a dict of name to options (Celery's old form)."""
    if not value:
        return []
    if isinstance(value, Mapping):
        entries = cast(Mapping[Any, Any], value)
        specs: list[QueueSpec] = []
        for name, options in entries.items():
            if not isinstance(name, str) or not isinstance(options, Mapping):
                raise ImproperlyConfigured(
                    "task_queues", f"expected queue name: options, got {name!r}: {options!r}"
                )
            specs.append(
                _queue_spec({**cast(Mapping[str, Any], options), "name": name}, "task_queues")
            )
        return specs
    if isinstance(value, (list, tuple)):
        return [_queue_spec(item, "task_queues") for item in cast(Sequence[Any], value)]
    raise ImproperlyConfigured("task_queues", f"expected a list of queues, got {value!r}")


def _queue_spec(value: Any, where: str) -> QueueSpec:
    """A queue given as a QueueSpec, a dict, or an object like ``kombu.Queue``."""
    if isinstance(value, QueueSpec):
        return value
    if isinstance(value, Mapping):
        return _queue_from_dict(cast(Mapping[str, Any], value), where)
    if _is_queue_object(value):
        exchange, exchange_type = _exchange_name_and_type(getattr(value, "exchange", None), where)
        arguments: Mapping[str, Any] = getattr(value, "queue_arguments", None) or {}
        return QueueSpec(
            value.name,
            exchange=exchange,
            exchange_type=exchange_type or "direct",
            routing_key=getattr(value, "routing_key", None) or "",
            arguments=dict(cast(Mapping[str, Any], arguments)),
            max_priority=getattr(value, "max_priority", None),
        )
    raise _invalid(where, f"expected a queue (QueueSpec, dict or kombu.Queue), got {value!r}")


def _queue_from_dict(value: Mapping[str, Any], where: str) -> QueueSpec:
    unknown = sorted(set(value) - _QUEUE_DICT_KEYS - _IGNORED_KOMBU_KEYS)
    name = value.get("name")
    if unknown or not isinstance(name, str) or not name:
        problem = f"unknown keys {unknown}" if unknown else "a queue needs a name"
        raise _invalid(
            where, f"{problem} in {dict(value)!r}; known keys: {sorted(_QUEUE_DICT_KEYS)}"
        )
    exchange, exchange_type = _exchange_name_and_type(value.get("exchange"), where)
    arguments: object = value.get("queue_arguments") or value.get("arguments") or {}
    if not isinstance(arguments, Mapping):
        raise _invalid(where, f"queue {name!r}: queue_arguments must be a dict, got {arguments!r}")
    return QueueSpec(
        name,
        exchange=exchange,
        exchange_type=value.get("exchange_type") or exchange_type or "direct",
        routing_key=value.get("routing_key") or value.get("binding_key") or "",
        arguments=dict(cast(Mapping[str, Any], arguments)),
        max_priority=value.get("max_priority"),
    )


# -- task_routes ---------------------------------------------------------------------------------


class _MapRouter:
    """A dict of task name (exact, ``*`` glob, or compiled regex) to a route.

    Exact names are looked up first; patterns are tried in the order they were written.
    """

    def __init__(self, entries: Iterable[tuple[Any, Any]]) -> None:
        self.exact: dict[str, Mapping[str, Any]] = {}
        self.patterns: list[tuple[re.Pattern[str], Mapping[str, Any]]] = []
        for key, value in entries:
            route = _as_route(value, f"the route for {key!r}")
            if isinstance(key, re.Pattern):
                self.patterns.append((cast(re.Pattern[str], key), route))
            elif isinstance(key, str) and "*" in key:
                self.patterns.append((re.compile(fnmatch.translate(key)), route))
            elif isinstance(key, str):
                self.exact[key] = route
            else:
                raise ImproperlyConfigured(
                    "task_routes", f"a route key must be a task name, glob or regex, got {key!r}"
                )

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Mapping[str, Any] | None:
        route = self.exact.get(name)
        if route is not None:
            return route
        return next((route for pattern, route in self.patterns if pattern.match(name)), None)

    def __repr__(self) -> str:
        return f"<MapRouter {len(self.exact)} names, {len(self.patterns)} patterns>"


class _LegacyRouter:
    """A pre-4.0 Celery router object: it has ``route_for_task(task, args, kwargs)``."""

    def __init__(self, router: Any) -> None:
        self.router = router

    def __call__(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], *_: Any, **__: Any
    ) -> Any:
        return self.router.route_for_task(name, args, kwargs)

    def __repr__(self) -> str:
        return repr(self.router)


def _prepare_routers(routes: Any) -> list[RouterFunc]:
    if routes is None:
        return []
    items = cast(Sequence[Any], routes) if isinstance(routes, (list, tuple)) else [routes]
    return [_prepare_router(item) for item in items]


def _prepare_router(item: Any) -> RouterFunc:
    if isinstance(item, Mapping):
        return _MapRouter(cast(Mapping[Any, Any], item).items())
    if isinstance(item, (list, tuple)):
        pairs = cast(Sequence[Any], item)
        if not all(
            isinstance(p, (list, tuple)) and len(cast(Sequence[Any], p)) == 2 for p in pairs
        ):
            raise ImproperlyConfigured(
                "task_routes", f"a list router must hold (pattern, route) pairs, got {item!r}"
            )
        return _MapRouter(cast(Sequence[tuple[Any, Any]], pairs))
    if isinstance(item, str):
        item = _import_router(item)
    if hasattr(item, "route_for_task"):
        return _LegacyRouter(item() if isinstance(item, type) else item)
    if callable(item):
        return cast(RouterFunc, item)
    raise ImproperlyConfigured(
        "task_routes", f"expected a dict, a list of pairs, a function or its path, got {item!r}"
    )


def _import_router(path: str) -> Any:
    """``"proj.routers.route_task"`` or ``"proj.routers:route_task"``."""
    module_name, sep, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module_name or not attr:
        raise ImproperlyConfigured("task_routes", f"{path!r} is not a module.attribute path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured("task_routes", f"cannot import router {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImproperlyConfigured(
            "task_routes", f"module {module_name!r} has no router {attr!r}"
        ) from None
