"""A small typed face on kazoo (which ships no type information): only what the transport uses.

kazoo's errors come out as :class:`~taskq.contracts.TransportError` (the caller may retry),
except the outcomes the transport expects and handles: a missing node reads as ``None`` or
``[]``, and a failed transaction returns False.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Generator, Sequence
from typing import Any

from kazoo.client import KazooClient  # pyright: ignore[reportMissingTypeStubs]
from kazoo.exceptions import (  # pyright: ignore[reportMissingTypeStubs]
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.handlers.threading import (  # pyright: ignore[reportMissingTypeStubs]
    KazooTimeoutError,
)
from kazoo.recipe.watchers import ChildrenWatch  # pyright: ignore[reportMissingTypeStubs]

from taskq.contracts import TransportError

__all__ = ["Znodes", "Transaction", "Watcher"]

logger = logging.getLogger("taskq_zookeeper.znodes")

#: Called with no argument when a watched node's children change.
Watcher = Callable[[Any], None]


@contextlib.contextmanager
def _errors(action: str) -> Generator[None, None, None]:
    try:
        yield
    except (KazooException, KazooTimeoutError, OSError) as exc:
        raise TransportError(f"ZooKeeper {action} failed: {exc!r}") from exc


class Transaction:
    """Operations that all happen or none does (ZooKeeper's multi)."""

    def __init__(self, request: Any) -> None:
        self._request: Any = request

    def create(
        self, path: str, data: bytes, *, ephemeral: bool = False, sequence: bool = False
    ) -> None:
        self._request.create(path, data, ephemeral=ephemeral, sequence=sequence)

    def delete(self, path: str, version: int = -1) -> None:
        self._request.delete(path, version=version)

    def set_data(self, path: str, data: bytes, version: int = -1) -> None:
        self._request.set_data(path, data, version=version)

    def check(self, path: str, version: int) -> None:
        self._request.check(path, version)

    def commit(self) -> list[object] | None:
        """Each operation's result when all succeeded, ``None`` when the server refused."""
        with _errors("transaction"):
            results: list[object] = list(self._request.commit())
        if any(isinstance(result, Exception) for result in results):
            return None
        return results


class Znodes:
    """One ZooKeeper session."""

    def __init__(self, hosts: str, *, session_timeout: float) -> None:
        retry = {"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 1.0}
        self._client: Any = KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            connection_retry=retry,
            command_retry={"max_tries": 3, "delay": 0.05, "max_delay": 0.5},
        )

    def start(self, timeout: float) -> None:
        with _errors("connect"):
            self._client.start(timeout=timeout)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._client.stop()
        with contextlib.suppress(Exception):
            self._client.close()

    def children(self, path: str, watch: Watcher | None = None) -> list[str]:
        """The children's names (``[]`` when ``path`` does not exist)."""
        with _errors(f"get_children {path}"):
            try:
                return [str(name) for name in self._client.get_children(path, watch=watch)]
            except NoNodeError:
                if watch is not None:
                    # Watch for the node's creation instead, so a wait still wakes.
                    self._client.exists(path, watch=watch)
                return []

    def get(self, path: str) -> tuple[bytes, int] | None:
        """``(data, version)``, or ``None`` when the node does not exist."""
        with _errors(f"get {path}"):
            try:
                data, stat = self._client.get(path)
            except NoNodeError:
                return None
        return bytes(data or b""), int(stat.version)

    def get_many(self, paths: Sequence[str]) -> list[tuple[bytes, int] | None]:
        """:meth:`get` of several nodes in one pipelined round trip."""
        with _errors("get"):
            pending = [self._client.get_async(path) for path in paths]
            found: list[tuple[bytes, int] | None] = []
            for result in pending:
                try:
                    data, stat = result.get()
                except NoNodeError:
                    found.append(None)
                else:
                    found.append((bytes(data or b""), int(stat.version)))
        return found

    def exists(self, path: str) -> bool:
        with _errors(f"exists {path}"):
            return self._client.exists(path) is not None

    def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        sequence: bool = False,
        ephemeral: bool = False,
        makepath: bool = False,
    ) -> str | None:
        """The created node's path; ``None`` when the parent is missing (without ``makepath``)
        or the node exists already."""
        with _errors(f"create {path}"):
            try:
                created = self._client.create(
                    path, data, sequence=sequence, ephemeral=ephemeral, makepath=makepath
                )
            except (NoNodeError, NodeExistsError):
                return None
        return str(created)

    def create_many(self, items: Sequence[tuple[str, bytes]], *, sequence: bool) -> list[bool]:
        """Create several nodes pipelined; whether each was created (its parent existed)."""
        with _errors("create"):
            pending = [
                self._client.create_async(path, data, sequence=sequence) for path, data in items
            ]
            created: list[bool] = []
            for result in pending:
                try:
                    result.get()
                except (NoNodeError, NodeExistsError):
                    created.append(False)
                else:
                    created.append(True)
        return created

    def ensure_path(self, path: str) -> None:
        with _errors(f"ensure_path {path}"):
            self._client.ensure_path(path)

    def delete(self, path: str, *, version: int = -1, recursive: bool = False) -> bool:
        """Whether it was deleted (False: it did not exist or had another version)."""
        with _errors(f"delete {path}"):
            try:
                self._client.delete(path, version=version, recursive=recursive)
            except NoNodeError:
                return False
            except BadVersionError:
                return False
            except NotEmptyError:
                # A child appeared while deleting recursively: try once more.
                self._client.delete(path, recursive=True)
        return True

    def delete_many(self, paths: Sequence[str]) -> int:
        """Delete several nodes pipelined; how many existed and were deleted."""
        with _errors("delete"):
            pending = [self._client.delete_async(path) for path in paths]
            deleted = 0
            for result in pending:
                try:
                    result.get()
                except NoNodeError:
                    continue
                deleted += 1
        return deleted

    def transaction(self) -> Transaction:
        return Transaction(self._client.transaction())

    def watch_children(self, path: str, on_change: Callable[[list[str]], bool | None]) -> None:
        """Call ``on_change(children)`` now and after every change until it returns False."""
        with _errors(f"watch {path}"):
            ChildrenWatch(self._client, path, on_change)
