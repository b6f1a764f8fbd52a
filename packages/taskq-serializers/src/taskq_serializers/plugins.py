"""Finding serializers and compressors through entry points, and explaining a failed lookup.

Built-in formats and third-party ones arrive the same way: an entry point in the
``taskq.serializers`` or ``taskq.compressors`` group whose value is either an instance or a
zero-argument factory (a class, a function). Both registries load their group once, on the first
name they do not know, so importing taskq never imports a plugin nobody asked for.

A plugin that fails to load must not take the working formats down with it, so its error is
kept and reported when someone asks for that name, next to a did-you-mean and, for the formats
that live behind an extra, the pip command that installs them.
"""

from __future__ import annotations

import difflib
import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Generic, TypeVar

from taskq_serializers.base import INSTALL_COMMANDS, ExtraNotInstalled

__all__ = ["EXTRAS", "EntryPointLoader", "import_extra", "lookup_failure"]

T = TypeVar("T")

#: Names, aliases and content types served by a pip extra, mapped to that extra (a key of
#: ``INSTALL_COMMANDS``).
EXTRAS: Mapping[str, str] = {
    "yaml": "yaml",
    "application/x-yaml": "yaml",
    "msgpack": "msgpack",
    "application/x-msgpack": "msgpack",
    "brotli": "brotli",
    "application/x-brotli": "brotli",
    "zstd": "zstd",
    "zstandard": "zstd",
    "application/zstd": "zstd",
}


def import_extra(module: str, *, what: str, library: str, extra: str) -> ModuleType:
    """Import an optional library on first use, or say which extra installs it.

    Called on every encode and decode, so an already imported module is returned from
    ``sys.modules`` without going through the import machinery.
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExtraNotInstalled(what, library, extra) from exc


def _instance_or_factory(value: object, kind: type[T]) -> T | None:
    # A class is checked first: the class object itself has the protocol's attributes too.
    if not isinstance(value, type) and isinstance(value, kind):
        return value
    if callable(value):
        made = value()
        if not isinstance(made, type) and isinstance(made, kind):
            return made
    return None


class EntryPointLoader(Generic[T]):
    """Loads one entry-point group once, keeping why the entry points that failed did not load.

    ``kind`` is the runtime-checkable protocol a value (or what its factory returns) must meet.
    """

    def __init__(self, group: str, kind: type[T]) -> None:
        self.group = group
        self._kind = kind
        # Re-entrant: a plugin whose import looks something up in its registry must not hang.
        self._lock = threading.RLock()
        self._started = False
        self._finished = False
        #: entry-point name -> why it could not be used
        self.broken: dict[str, str] = {}

    def load_once(self, add: Callable[[T], None]) -> None:
        """Hand every plugin of the group to ``add`` on the first call; later calls do nothing.

        A concurrent caller waits until the first one has finished, so no other thread sees a
        registry that holds half of the plugins.
        """
        if self._finished:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            try:
                self._load(add)
            finally:
                self._finished = True

    def _load(self, add: Callable[[T], None]) -> None:
        # importlib.metadata costs tens of milliseconds to import: pay it only when looking.
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                plugin = _instance_or_factory(ep.load(), self._kind)
            except Exception as exc:  # a plugin's import or factory can raise anything
                self.broken[ep.name] = f"{ep.value} failed to load: {type(exc).__name__}: {exc}"
                continue
            if plugin is None:
                self.broken[ep.name] = f"{ep.value} is not a valid plugin for {self.group}"
            else:
                add(plugin)


def lookup_failure(
    kind: str,
    key: str,
    names: Iterable[str],
    broken: Mapping[str, str],
    other_keys: Iterable[str] = (),
) -> str:
    """The message for a key nobody registered: why, what was meant, what to install.

    ``names`` are listed as what is registered; ``other_keys`` (content types, aliases) are
    only candidates for the did-you-mean.
    """
    listed = sorted(set(names))
    parts = [f"unknown {kind} {key!r}."]
    if key in broken:
        parts.append(f"Its entry point {broken[key]}.")
    if key in EXTRAS:
        parts.append(f"It is an optional extra: {INSTALL_COMMANDS[EXTRAS[key]]}.")
    close = difflib.get_close_matches(key, sorted({*listed, *other_keys}), n=3)
    if close:
        parts.append("Did you mean " + " or ".join(repr(c) for c in close) + "?")
    parts.append("Registered: " + (", ".join(listed) or "none") + ".")
    return " ".join(parts)
