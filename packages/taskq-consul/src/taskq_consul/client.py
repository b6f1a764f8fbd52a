"""A typed face on py-consul's KV and session calls, one HTTP client per thread.

py-consul ships no type information and its ``requests`` session is not meant to be shared
between threads, while one transport serves a worker's consumer thread, its publishers and the
session heartbeat at once. So each thread gets its own ``consul.Consul``, and every failure
(refused connection, 5xx, a timeout) becomes :class:`~taskq.contracts.TransportError`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, cast

import consul  # pyright: ignore[reportMissingTypeStubs]
import requests

from taskq.contracts import TransportError

__all__ = ["ConsulClient", "Entry", "MessageTooLarge"]


class MessageTooLarge(ValueError):
    """Consul refused a value over its ``kv_max_value_size`` (512 KiB unless configured).

    A ValueError, not a TransportError: sending the same message again cannot succeed.
    """


@dataclass(frozen=True, slots=True)
class Entry:
    """One KV entry as Consul returns it."""

    key: str
    value: bytes
    create_index: int
    modify_index: int
    flags: int
    session: str | None


def _entry(raw: Any) -> Entry:
    data = cast("dict[str, Any]", raw)
    value = data.get("Value")
    return Entry(
        key=str(data["Key"]),
        value=value if isinstance(value, bytes) else b"",
        create_index=int(data["CreateIndex"]),
        modify_index=int(data["ModifyIndex"]),
        flags=int(data.get("Flags") or 0),
        session=cast("str | None", data.get("Session")) or None,
    )


def _go_duration(seconds: float | None) -> str | None:
    """A blocking query's ``wait`` as Consul reads it (a Go duration), in milliseconds."""
    return None if seconds is None else f"{max(int(seconds * 1000), 1)}ms"


@contextlib.contextmanager
def _translated(what: str) -> Generator[None, None, None]:
    try:
        yield
    except consul.ConsulException as exc:
        raise TransportError(f"Consul {what} failed: {exc}") from exc
    except requests.RequestException as exc:
        raise TransportError(f"Consul {what} failed: {exc}") from exc
    except OSError as exc:
        raise TransportError(f"Consul {what} failed: {exc}") from exc


class ConsulClient:
    """KV and session calls against one agent, from any thread."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        scheme: str = "http",
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.scheme, self.token = host, port, scheme, token
        self.timeout = timeout
        self._local = threading.local()

    def _agent(self) -> Any:
        agent = getattr(self._local, "agent", None)
        if agent is None:
            agent = consul.Consul(
                host=self.host,
                port=self.port,
                scheme=self.scheme,
                token=self.token,
                connections_timeout=self.timeout,
            )
            self._local.agent = agent
        return agent

    # -- KV ----------------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        with _translated(f"GET {key}"):
            _, raw = self._agent().kv.get(key)
        return None if raw is None else _entry(raw)

    def entries(self, prefix: str) -> list[Entry]:
        """Every entry under ``prefix`` (``?recurse``), in key order."""
        return self.watch_entries(prefix)[1]

    def watch_entries(
        self, prefix: str, *, index: int | None = None, wait: float | None = None
    ) -> tuple[int, list[Entry]]:
        """Every entry under ``prefix`` and the ``X-Consul-Index``; blocking with ``index``."""
        with _translated(f"GET {prefix}?recurse"):
            found, raw = self._agent().kv.get(
                prefix, recurse=True, index=index, wait=_go_duration(wait)
            )
        return int(found), [_entry(item) for item in cast("list[Any]", raw or [])]

    def keys(
        self,
        prefix: str,
        *,
        separator: str | None = None,
        index: int | None = None,
        wait: float | None = None,
    ) -> tuple[int, list[str]]:
        """The key names under ``prefix`` (``?keys``) and the ``X-Consul-Index``.

        With ``index``, a blocking query: it answers once something under ``prefix`` changed
        after that index, or after ``wait`` seconds.
        """
        with _translated(f"GET {prefix}?keys"):
            found, raw = self._agent().kv.get(
                prefix, keys=True, separator=separator, index=index, wait=_go_duration(wait)
            )
        return int(found), [str(k) for k in cast("list[Any]", raw or [])]

    def put(
        self,
        key: str,
        value: bytes | None,
        *,
        cas: int | None = None,
        flags: int | None = None,
        acquire: str | None = None,
    ) -> bool:
        """Write ``key``; False when ``cas`` or the lock (``acquire``) did not allow it."""
        try:
            with _translated(f"PUT {key}"):
                done = self._agent().kv.put(key, value, cas=cas, flags=flags, acquire=acquire)
        except TransportError as exc:
            if " 413 " in f" {exc.__cause__} ":
                raise MessageTooLarge(str(exc)) from exc.__cause__
            raise
        return bool(done)

    def delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        with _translated(f"DELETE {key}"):
            return bool(self._agent().kv.delete(key, recurse=recurse or None, cas=cas))

    # -- sessions ----------------------------------------------------------------------

    def create_session(self, name: str, ttl: int, *, behavior: str = "release") -> str:
        with _translated("session create"):
            return str(
                self._agent().session.create(
                    name=name, ttl=ttl, behavior=behavior, lock_delay=0, checks=[]
                )
            )

    def renew_session(self, session_id: str) -> bool:
        """Renew a session's TTL; False when Consul no longer knows it (it expired)."""
        try:
            with _translated("session renew"):
                self._agent().session.renew(session_id)
        except TransportError as exc:
            if isinstance(exc.__cause__, consul.NotFound):
                return False
            raise
        return True

    def destroy_session(self, session_id: str) -> None:
        with _translated("session destroy"):
            self._agent().session.destroy(session_id)
