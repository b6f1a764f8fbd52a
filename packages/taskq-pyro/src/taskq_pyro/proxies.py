"""Pyro proxies to the broker, one per thread, with Pyro's errors as TransportError.

A Pyro4 proxy serializes the calls made through it, so a worker's blocking fetch on a shared
proxy would hold up its acks: each thread gets a proxy (a connection) of its own. Pyro4 ships
no type information; this module is the only one that touches it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator
from typing import Any

import Pyro4 as _Pyro4  # pyright: ignore[reportMissingTypeStubs]
from Pyro4.errors import PyroError  # pyright: ignore[reportMissingTypeStubs]

from taskq.contracts import TransportError

__all__ = ["Proxies", "broker_errors"]

#: Pyro4 ships no type information.
pyro: Any = _Pyro4


@contextlib.contextmanager
def broker_errors(action: str) -> Generator[None, None, None]:
    try:
        yield
    except PyroError as exc:
        raise TransportError(f"Pyro broker {action} failed: {exc!r}") from exc
    except OSError as exc:
        raise TransportError(f"Pyro broker {action} failed: {exc!r}") from exc


class Proxies:
    def __init__(self, uri: str, *, timeout: float) -> None:
        self._uri = uri
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self._closed = False

    def get(self) -> Any:
        """This thread's proxy (created on first use)."""
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            with self._lock:
                if self._closed:
                    raise TransportError("the Pyro transport is closed")
                with broker_errors("lookup"):
                    proxy = pyro.Proxy(self._uri)
                    proxy._pyroTimeout = self._timeout
                self._open.append(proxy)
            self._local.proxy = proxy
        return proxy

    def close(self) -> None:
        with self._lock:
            self._closed = True
            proxies, self._open = self._open, []
        for proxy in proxies:
            with contextlib.suppress(Exception):
                proxy._pyroRelease()
