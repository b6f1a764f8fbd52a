"""Retrying a result-store call while Redis is unreachable, by Celery's ``retry_policy``.

Celery's Redis backend retries a lost connection by its ``retry_policy`` (``max_retries`` 20,
the first retry at once, then one every second: ``interval_start`` 0, ``interval_step`` 1,
``interval_max`` 1), which ``result_backend_transport_options["retry_policy"]`` overrides key by
key. taskq reads the same option the same way. When the retries are spent, the call raises
:class:`~taskq.contracts.BackendError`, which names the cause.

Only connection failures are retried. A script or command error (a bug, a full server) is not
something waiting fixes; it becomes a BackendError at once. Nor is a server certificate that does
not verify against the configured CA (:mod:`taskq_redis.certificates`): that is raised at once as
:class:`~taskq.exceptions.ImproperlyConfigured`, naming the setting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from taskq.contracts import BackendError
from taskq.exceptions import ImproperlyConfigured
from taskq_redis.certificates import CertificateSettings
from taskq_redis.options import read_int, read_mapping, read_seconds

__all__ = ["RetryPolicy", "CONNECTION_ERRORS"]

T = TypeVar("T")

#: What "Redis is unreachable for now" looks like to redis-py: a restart, a dropped socket, a
#: server still loading its data set, or a failover (the old master, now a replica, refuses
#: writes until Sentinel names the new one).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    OSError,
)
_KEYS = frozenset({"max_retries", "interval_start", "interval_step", "interval_max"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry; ``max_retries=None`` retries for ever."""

    #: Tells a certificate that does not verify from a lost connection, and names its
    #: settings: made from the backend's URL and client, which hold them.
    certificates: CertificateSettings
    max_retries: int | None = 20
    interval_start: float = 0.0
    interval_step: float = 1.0
    interval_max: float = 1.0

    @classmethod
    def from_options(
        cls, options: Mapping[str, Any], setting: str, certificates: CertificateSettings
    ) -> RetryPolicy:
        given = read_mapping(options, "retry_policy", setting)
        if not given:
            return cls(certificates)
        unknown = sorted(set(given) - _KEYS)
        if unknown:
            raise ImproperlyConfigured(
                setting,
                f"retry_policy: unknown key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KEYS))}",
            )
        default = cls(certificates)
        # An explicit None means "retry for ever", as in kombu's retry_over_time.
        forever = "max_retries" in given and given["max_retries"] is None
        return cls(
            certificates,
            max_retries=None if forever else read_int(given, "max_retries", 20, setting),
            interval_start=_seconds(given, "interval_start", default.interval_start, setting),
            interval_step=_seconds(given, "interval_step", default.interval_step, setting),
            interval_max=_seconds(given, "interval_max", default.interval_max, setting),
        )

    def pause(self, retry: int) -> float:
        """How long to wait before retry number ``retry`` (0 for the first)."""
        return min(self.interval_start + self.interval_step * retry, self.interval_max)

    def call(self, action: Callable[[], T], what: str) -> T:
        """``action()``, retried while Redis is unreachable; BackendError once retries run out,
        ImproperlyConfigured at once for a certificate that does not verify.

        ``what`` names the operation in the error (``"store 3 results"``).
        """
        retry = 0
        while True:
            try:
                return action()
            except CONNECTION_ERRORS as exc:
                misconfigured = self.certificates.error(exc)
                if misconfigured is not None:
                    raise misconfigured from exc
                if self.max_retries is not None and retry >= self.max_retries:
                    raise BackendError(
                        f"Redis result backend: could not {what} after {retry} retries: {exc}"
                    ) from exc
                time.sleep(self.pause(retry))
                retry += 1
            except redis.RedisError as exc:
                raise BackendError(f"Redis result backend: could not {what}: {exc}") from exc


def _seconds(options: Mapping[str, Any], key: str, default: float, setting: str) -> float:
    value = read_seconds(options, key, default, setting, allow_zero=True)
    return default if value is None else value
