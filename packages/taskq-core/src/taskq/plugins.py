"""Finding transports, result backends and pools through entry points.

Groups: ``taskq.transports`` and ``taskq.backends`` (named by URL scheme), ``taskq.pools`` (by
pool name). Built-ins register the same way as third-party packages. Lookups are lazy (nothing
is imported until asked for) and cached. An unknown name fails with the closest known one and,
where a taskq extra provides it, the command that installs it.
"""

from __future__ import annotations

import difflib
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from taskq.exceptions import PluginNotFound

__all__ = [
    "TRANSPORTS",
    "BACKENDS",
    "POOLS",
    "PluginGroup",
    "scheme_of",
    "INSTALL_HINTS",
]

#: What to install for a name no installed package provides. Each hint is written out whole,
#: and only for extras that exist (tools/check_workspace.py holds the two equal); more join as
#: the packages serving them are released.
INSTALL_HINTS: dict[str, str] = {}


def scheme_of(url: str) -> str:
    """``redis://h:1/0`` → ``redis``; ``db+postgresql://...`` → ``db`` (Celery's ``X+url``)."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        # A bare name ("sqlite", "memory") is accepted as a scheme.
        scheme = url
    return scheme.partition("+")[0].lower()


class PluginGroup:
    """One entry-point group: names to loaded objects, loaded on first use of each name."""

    def __init__(self, group: str, kind: str) -> None:
        self.group = group
        self.kind = kind
        self._lock = threading.Lock()
        self._entry_points: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, Any] = {}
        self._registered: dict[str, Any] = {}

    def register(self, name: str, factory: Any) -> None:
        """Add a plugin by hand (tests, apps that ship their own transport)."""
        with self._lock:
            self._registered[name] = factory

    def names(self) -> list[str]:
        return sorted({*self._points(), *self._registered})

    def _points(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            found = {ep.name: ep for ep in entry_points(group=self.group)}
            self._entry_points = found
        return self._entry_points

    def load(self, name: str) -> Any:
        """The factory registered as ``name``; PluginNotFound explains what to do if none."""
        with self._lock:
            if name in self._registered:
                return self._registered[name]
            if name in self._loaded:
                return self._loaded[name]
            point = self._points().get(name)
            if point is None:
                raise PluginNotFound(self._missing(name))
            try:
                factory = point.load()
            except ImportError as exc:
                hint = INSTALL_HINTS.get(name)
                extra = f" Install it with: {hint}" if hint else ""
                raise PluginNotFound(
                    f"the {self.kind} {name!r} is installed but cannot be imported: {exc}.{extra}"
                ) from exc
            self._loaded[name] = factory
            return factory

    def _missing(self, name: str) -> str:
        known = self.names()
        parts = [f"no {self.kind} named {name!r} is installed."]
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            parts.append(f"Did you mean {close[0]!r}?")
        hint = INSTALL_HINTS.get(name)
        if hint:
            parts.append(f"Install it with: {hint}")
        parts.append(f"Installed: {', '.join(known) or 'none'}.")
        return " ".join(parts)


TRANSPORTS = PluginGroup("taskq.transports", "transport")
BACKENDS = PluginGroup("taskq.backends", "result backend")
POOLS = PluginGroup("taskq.pools", "pool")
