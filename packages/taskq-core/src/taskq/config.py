"""Settings: Celery's names and defaults, read from objects, modules and Django settings.

``app.conf`` behaves like Celery's: attribute and item access, ``update``, ``setdefault``,
``config_from_object('proj.celeryconfig')`` or ``('django.conf:settings', namespace='CELERY')``.
Old uppercase names (``CELERY_TASK_SERIALIZER``, ``BROKER_URL``, ``CELERYD_CONCURRENCY``) are
read as their lowercase successors, as Celery 4+ does.

Every known setting has a check. :meth:`Settings.validate`, called when a worker or client
starts, raises :class:`~taskq.exceptions.ImproperlyConfigured` naming the first bad setting and
what it should be. A typo in a setting's name gets a did-you-mean warning: it would otherwise
be ignored without a word.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from taskq.exceptions import ImproperlyConfigured

__all__ = ["Settings", "DEFAULTS", "DEFAULT_SQLITE_URL", "Setting"]

logger = logging.getLogger("taskq.config")

#: Where broker and results go when nothing is configured: a file in the working directory.
DEFAULT_SQLITE_URL = "sqlite:///taskq.sqlite3"

Check = Callable[[Any], str | None]


def _is(*types: type) -> Check:
    names = " or ".join(t.__name__ for t in types)

    def check(value: Any) -> str | None:
        if isinstance(value, bool) and bool not in types:
            return f"expected {names}, got {value!r}"
        return None if isinstance(value, types) else f"expected {names}, got {value!r}"

    return check


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _positive_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return f"expected a positive number of seconds, got {value!r}"
    return None


def _non_negative_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected a whole number >= 0, got {value!r}"
    return None


def _positive_int(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"expected a whole number >= 1, got {value!r}"
    return None


def _names(value: Any) -> str | None:
    if isinstance(value, str):
        return f"expected a list of names, got the string {value!r} (write [{value!r}])"
    if not isinstance(value, (list, tuple, set, frozenset)):
        return f"expected a list of names, got {value!r}"
    for item in value:  # pyright: ignore[reportUnknownVariableType]
        if not isinstance(item, str):
            return f"expected names (strings), got {item!r}"
    return None


def _mapping(value: Any) -> str | None:
    return None if isinstance(value, Mapping) else f"expected a mapping, got {value!r}"


def _rate(value: Any) -> str | None:
    from taskq.rates import parse_rate

    try:
        parse_rate(value)
    except ValueError as exc:
        return str(exc)
    return None


def _one_of(*choices: object) -> Check:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"expected one of {', '.join(map(str, choices))}, got {value!r}"

    return check


def _routes(value: Any) -> str | None:
    if value is None or isinstance(value, (Mapping, list, tuple)) or callable(value):
        return None
    return f"expected a dict, a list of routers or a function, got {value!r}"


@dataclass(frozen=True, slots=True)
class Setting:
    default: Any
    check: Check


def _s(default: Any, check: Check) -> Setting:
    return Setting(default, check)


_str = _is(str)
_opt_str = _optional(_is(str))
_bool = _is(bool)
_opt_seconds = _optional(_positive_number)
_seconds = _positive_number

#: Every setting taskq reads, with Celery's default (taskq's where it is safer, marked).
DEFAULTS: dict[str, Setting] = {
    # broker
    "broker_url": _s(None, _opt_str),
    "broker_transport_options": _s({}, _mapping),
    # TLS for the broker: True, or a mapping of ssl options (the transport passes it on).
    "broker_use_ssl": _s(None, _optional(_is(bool, Mapping))),
    "broker_connection_retry": _s(True, _bool),
    "broker_connection_retry_on_startup": _s(True, _bool),
    "broker_connection_max_retries": _s(100, _optional(_non_negative_int)),
    "broker_connection_timeout": _s(4.0, _seconds),
    # results
    "result_backend": _s(None, _opt_str),
    "result_backend_transport_options": _s({}, _mapping),
    "redis_backend_use_ssl": _s(None, _optional(_mapping)),
    "result_serializer": _s("json", _str),
    "result_accept_content": _s(None, _optional(_names)),
    "result_expires": _s(86400.0, _optional(_positive_number)),
    "result_extended": _s(False, _bool),
    "result_compression": _s(None, _opt_str),
    "result_chord_join_timeout": _s(3.0, _seconds),
    # messages
    "task_serializer": _s("json", _str),
    "accept_content": _s(["json"], _names),
    "task_compression": _s(None, _opt_str),
    "task_protocol": _s(2, _one_of(2)),
    # how tasks run (taskq: acks_late on by default, so a task whose worker dies runs again)
    "task_acks_late": _s(True, _bool),
    "task_acks_on_failure_or_timeout": _s(True, _bool),
    "task_reject_on_worker_lost": _s(None, _optional(_bool)),
    "task_time_limit": _s(None, _opt_seconds),
    "task_soft_time_limit": _s(None, _opt_seconds),
    "task_track_started": _s(False, _bool),
    "task_ignore_result": _s(False, _bool),
    "task_store_errors_even_if_ignored": _s(False, _bool),
    "task_always_eager": _s(False, _bool),
    "task_eager_propagates": _s(False, _bool),
    "task_store_eager_result": _s(False, _bool),
    "task_default_rate_limit": _s(None, _optional(_rate)),
    "task_default_retry_delay": _s(180.0, _positive_number),
    "task_max_retries": _s(3, _optional(_non_negative_int)),
    "task_annotations": _s(None, _optional(_mapping)),
    # routing
    "task_routes": _s(None, _routes),
    "task_queues": _s(None, _optional(_is(list, tuple, dict))),
    "task_default_queue": _s("celery", _str),
    "task_default_exchange": _s(None, _opt_str),
    "task_default_exchange_type": _s("direct", _one_of("direct", "topic", "fanout", "headers")),
    "task_default_routing_key": _s(None, _opt_str),
    "task_create_missing_queues": _s(True, _bool),
    "task_default_priority": _s(None, _optional(_non_negative_int)),
    "task_queue_max_priority": _s(None, _optional(_non_negative_int)),
    "task_inherit_parent_priority": _s(False, _bool),
    "task_default_delivery_mode": _s(2, _one_of(1, 2, "persistent", "transient")),
    "task_publish_retry": _s(True, _bool),
    "task_publish_retry_policy": _s(
        {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 1},
        _mapping,
    ),
    "task_send_sent_event": _s(False, _bool),
    # worker
    "worker_concurrency": _s(None, _optional(_positive_int)),
    "worker_pool": _s("prefork", _str),
    "worker_prefetch_multiplier": _s(4, _non_negative_int),
    "worker_max_tasks_per_child": _s(None, _optional(_positive_int)),
    "worker_max_memory_per_child": _s(None, _optional(_positive_int)),
    "worker_disable_rate_limits": _s(False, _bool),
    "worker_send_task_events": _s(False, _bool),
    "worker_lost_wait": _s(10.0, _seconds),
    "worker_hijack_root_logger": _s(True, _bool),
    "worker_log_format": _s(None, _opt_str),
    "worker_task_log_format": _s(None, _opt_str),
    "worker_deduplicate_successful_tasks": _s(False, _bool),
    "worker_enable_remote_control": _s(True, _bool),
    #: taskq: deliveries of one message before it goes to the dead-letter queue.
    "worker_max_deliveries": _s(5, _positive_int),
    "worker_shutdown_timeout": _s(None, _opt_seconds),
    # time, imports
    "timezone": _s(None, _opt_str),
    "enable_utc": _s(True, _bool),
    "imports": _s((), _names),
    "include": _s((), _names),
    # security
    "security_key": _s(None, _opt_str),
    "security_key_password": _s(None, _optional(_is(str, bytes))),
    "security_certificate": _s(None, _opt_str),
    "security_cert_store": _s(None, _opt_str),
    "security_digest": _s("sha256", _str),
    # control and events
    "control_exchange": _s("celery", _str),
    "control_queue_expires": _s(10.0, _positive_number),
    "event_exchange": _s("celeryev", _str),
    "event_serializer": _s("json", _str),
}

# Celery 3's uppercase names that do not follow the CELERY_<new name> rule.
_OLD_NAMES = {
    "BROKER_URL": "broker_url",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "BROKER_USE_SSL": "broker_use_ssl",
    "CELERY_REDIS_BACKEND_USE_SSL": "redis_backend_use_ssl",
    "BROKER_CONNECTION_RETRY": "broker_connection_retry",
    "BROKER_CONNECTION_MAX_RETRIES": "broker_connection_max_retries",
    "BROKER_CONNECTION_TIMEOUT": "broker_connection_timeout",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_ACCEPT_CONTENT": "accept_content",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_IGNORE_RESULT": "task_ignore_result",
    "CELERY_DEFAULT_QUEUE": "task_default_queue",
    "CELERY_DEFAULT_RATE_LIMIT": "task_default_rate_limit",
    "CELERY_ROUTES": "task_routes",
    "CELERY_QUEUES": "task_queues",
    "CELERY_TIMEZONE": "timezone",
    "CELERY_ENABLE_UTC": "enable_utc",
    "CELERY_IMPORTS": "imports",
    "CELERY_INCLUDE": "include",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "CELERYD_POOL": "worker_pool",
    "CELERY_SECURITY_KEY": "security_key",
    "CELERY_SECURITY_CERTIFICATE": "security_certificate",
    "CELERY_SECURITY_CERT_STORE": "security_cert_store",
}


def _new_name(key: str) -> str | None:
    """The current name of an old uppercase setting, or None if it is not one."""
    if key in _OLD_NAMES:
        return _OLD_NAMES[key]
    for prefix in ("CELERY_", "CELERYD_"):
        if key.startswith(prefix):
            rest = key[len(prefix) :].lower()
            for candidate in (rest, f"task_{rest}", f"worker_{rest}"):
                if candidate in DEFAULTS:
                    return candidate
    return None


class Settings(MutableMapping[str, Any]):
    """``app.conf``: what the user set, over the defaults."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_changes", {})
        object.__setattr__(self, "_warned", set())
        if initial:
            self.update(initial)

    # -- mapping ---------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        changes: dict[str, Any] = self._changes
        if key in changes:
            return changes[key]
        if key in DEFAULTS:
            return DEFAULTS[key].default
        raise KeyError(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._changes[self._normalize(key)] = value

    def __delitem__(self, key: str) -> None:
        del self._changes[self._normalize(key)]

    def __iter__(self) -> Iterator[str]:
        yield from DEFAULTS
        yield from (k for k in self._changes if k not in DEFAULTS)

    def __len__(self) -> int:
        return len(DEFAULTS) + sum(1 for k in self._changes if k not in DEFAULTS)

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"no setting {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def changes(self) -> dict[str, Any]:
        """What was set explicitly (``celery inspect conf`` without defaults)."""
        return dict(self._changes)

    def _normalize(self, key: str) -> str:
        if key.isupper():
            new = _new_name(key)
            if new is not None:
                return new
        return key

    # -- loading -----------------------------------------------------------------------------

    def config_from_object(self, obj: object, namespace: str | None = None) -> None:
        """Load settings from a module path (``'proj.celeryconfig'``, ``'django.conf:settings'``),
        a module, a class or instance, or a mapping.

        With ``namespace='CELERY'`` only names starting with ``CELERY_`` are read, the prefix
        removed (``CELERY_BROKER_URL`` → ``broker_url``), as with Django settings.
        """
        source = _resolve(obj) if isinstance(obj, str) else obj
        items = _public_items(source)
        prefix = f"{namespace}_" if namespace else None
        for key, value in items:
            if prefix is not None:
                if not key.startswith(prefix):
                    continue
                key = key[len(prefix) :].lower()  # noqa: PLW2901
            elif key.isupper() and _new_name(key) is None and key.lower() not in DEFAULTS:
                continue  # an unrelated constant in the module
            self[key.lower() if key.isupper() and key.lower() in DEFAULTS else key] = value

    # -- checking ----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ImproperlyConfigured for the first setting whose value is wrong."""
        for key, value in self._changes.items():
            setting = DEFAULTS.get(key)
            if setting is None:
                self._warn_unknown(key)
                continue
            problem = setting.check(value)
            if problem:
                raise ImproperlyConfigured(key, problem)
        soft, hard = self["task_soft_time_limit"], self["task_time_limit"]
        if soft is not None and hard is not None and soft >= hard:
            raise ImproperlyConfigured(
                "task_soft_time_limit",
                f"must be less than task_time_limit ({soft} >= {hard}), or the soft limit "
                "never fires",
            )

    def _warn_unknown(self, key: str) -> None:
        warned: set[str] = self._warned
        if key in warned or not key.islower():
            return
        close = difflib.get_close_matches(key, DEFAULTS, n=1, cutoff=0.8)
        if close:
            warned.add(key)
            logger.warning("unknown setting %r: did you mean %r?", key, close[0])


def _resolve(path: str) -> object:
    """``'pkg.module'`` or ``'pkg.module:attribute'``; an ImportError names what is missing."""
    module_name, _, attribute = path.partition(":")
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            "config_from_object", f"cannot import {module_name!r}: {exc}"
        ) from exc
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImproperlyConfigured(
            "config_from_object", f"module {module_name!r} has no attribute {attribute!r}"
        ) from None


def _public_items(source: object) -> list[tuple[str, Any]]:
    if isinstance(source, Mapping):
        return [(str(k), v) for k, v in source.items()]  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    names = [n for n in dir(source) if not n.startswith("_")]
    items: list[tuple[str, Any]] = []
    for name in names:
        value = getattr(source, name)
        code = isinstance(value, ModuleType) or (callable(value) and not isinstance(value, type))
        if code and not name.isupper() and name not in DEFAULTS:
            continue  # the module's functions and imports, not settings
        items.append((name, value))
    return items
