"""``memory://``: results inside one process, for tests, with the SQLite backend's semantics.

``memory://`` (or ``memory``) is the process's default store; ``memory://name`` is a separate
one, and every backend built with the same name shares it, so a worker thread and the client
of one test see the same results. Records are kept encoded by
:class:`~taskq.backends.codec.ResultCodec`, as a real store keeps them: a result the configured
serializer cannot hold fails here too, and a reader gets a fresh copy. :meth:`wait` sleeps on
a condition that every store notifies, so it returns as soon as a result lands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskq.backends.chords import check_lease, check_size, chord_expiry, in_group_order
from taskq.backends.codec import ResultCodec
from taskq.contracts import CHORD_CLAIM_LEASE, BackendError, BackendOptions, ChordPart
from taskq.transports.memory import memory_name
from taskq_protocol import ResultMeta, states

__all__ = ["MemoryBackend"]

_PRUNE_EVERY = 10.0


@dataclass(slots=True)
class _Record:
    payload: bytes
    status: str
    expires_at: float | None


@dataclass(slots=True)
class _Chord:
    size: int | None = None
    #: The task id that completed the chord, until ``claim_until`` (a Unix time).
    claimed_by: str | None = None
    claim_until: float = 0.0
    done: bool = False
    #: task id → (group index, encoded meta), in report order.
    parts: dict[str, tuple[int | None, bytes]] = field(
        default_factory=dict[str, tuple[int | None, bytes]]
    )
    expires_at: float | None = None

    def restart(self) -> None:
        """A new run under the same group id: nothing counted, nothing claimed."""
        self.claimed_by, self.claim_until, self.done = None, 0.0, False
        self.parts.clear()


class _Store:
    """One named store; every access holds :attr:`cond`."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.results: dict[str, _Record] = {}
        self.groups: dict[str, _Record] = {}
        self.chords: dict[str, _Chord] = {}
        self.next_prune = 0.0

    def prune(self, now: float) -> None:
        """Drop what expired, now and then (reads already treat it as gone)."""
        if now < self.next_prune:
            return
        self.next_prune = now + _PRUNE_EVERY
        for table in (self.results, self.groups, self.chords):
            expired = [k for k, v in table.items() if _expired(v.expires_at, now)]
            for key in expired:
                del table[key]


def _expired(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


_lock = threading.Lock()
_stores: dict[str, _Store] = {}


def _store_named(name: str) -> _Store:
    with _lock:
        found = _stores.get(name)
        if found is None:
            found = _stores[name] = _Store()
        return found


class MemoryBackend:
    """A thread-safe in-process result store; see the module docstring."""

    schemes: tuple[str, ...] = ("memory",)

    def __init__(self, url: str, options: BackendOptions) -> None:
        self.url = url
        self.name = memory_name(url, BackendError)
        self.codec = ResultCodec.from_options(options)
        self.expires = options.expires
        self._store = _store_named(self.name)

    def _expires_at(self, expires: float | None, now: float) -> float | None:
        seconds = self.expires if expires is None else expires
        return None if seconds is None else now + seconds

    # -- task results ---------------------------------------------------------------------------

    def store(self, meta: ResultMeta, *, expires: float | None = None) -> None:
        self.store_many([meta], expires=expires)

    def store_many(self, metas: Iterable[ResultMeta], *, expires: float | None = None) -> None:
        encoded = [(m.task_id, m.status, self.codec.encode_meta(m)) for m in metas]
        if not encoded:
            return
        store = self._store
        with store.cond:
            now = time.time()
            expires_at = self._expires_at(expires, now)
            for task_id, status, payload in encoded:
                current = store.results.get(task_id)
                if (
                    current is not None
                    and current.status == states.SUCCESS
                    and not _expired(current.expires_at, now)
                ):
                    continue  # a SUCCESS is final
                store.results[task_id] = _Record(payload, status, expires_at)
            store.prune(now)
            store.cond.notify_all()

    def get(self, task_id: str) -> ResultMeta | None:
        with self._store.cond:
            record = self._live(task_id, time.time())
        return None if record is None else self.codec.decode_meta(record.payload, task_id)

    def _live(self, task_id: str, now: float) -> _Record | None:
        record = self._store.results.get(task_id)
        return None if record is None or _expired(record.expires_at, now) else record

    def wait(self, task_ids: Sequence[str], timeout: float | None) -> dict[str, ResultMeta]:
        wanted = list(dict.fromkeys(task_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        store = self._store
        with store.cond:
            while True:
                now = time.time()
                ready = {
                    task_id: record
                    for task_id in wanted
                    if (record := self._live(task_id, now)) is not None
                    and record.status in states.READY_STATES
                }
                remaining = None if deadline is None else deadline - time.monotonic()
                if len(ready) == len(wanted) or (remaining is not None and remaining <= 0):
                    break
                store.cond.wait(remaining)
        return {
            task_id: self.codec.decode_meta(record.payload, task_id)
            for task_id, record in ready.items()
        }

    def forget(self, task_id: str) -> None:
        with self._store.cond:
            self._store.results.pop(task_id, None)

    # -- groups ---------------------------------------------------------------------------------

    def save_group(self, group_id: str, result_tuple: list[Any]) -> None:
        payload = self.codec.encode_group(result_tuple)
        with self._store.cond:
            now = time.time()
            self._store.groups[group_id] = _Record(payload, "", self._expires_at(None, now))

    def restore_group(self, group_id: str) -> list[Any] | None:
        with self._store.cond:
            record = self._store.groups.get(group_id)
            if record is None or _expired(record.expires_at, time.time()):
                return None
        return self.codec.decode_group(record.payload)

    def delete_group(self, group_id: str) -> None:
        with self._store.cond:
            self._store.groups.pop(group_id, None)

    # -- chords ---------------------------------------------------------------------------------

    def _chord(self, group_id: str, now: float) -> _Chord:
        chords = self._store.chords
        chord = chords.get(group_id)
        if chord is None or _expired(chord.expires_at, now):
            chord = chords[group_id] = _Chord()
        seconds = chord_expiry(self.expires)
        chord.expires_at = None if seconds is None else now + seconds
        return chord

    def set_chord_size(self, group_id: str, size: int) -> None:
        check_size(size)
        with self._store.cond:
            chord = self._chord(group_id, time.time())
            if chord.done or chord.claimed_by is not None:
                chord.restart()
            chord.size = size

    def chord_part_done(
        self, part: ChordPart, *, lease: float = CHORD_CLAIM_LEASE
    ) -> list[ResultMeta] | None:
        check_lease(lease)
        payload = self.codec.encode_meta(part.meta)
        with self._store.cond:
            now = time.time()
            chord = self._chord(part.group_id, now)
            if chord.done:
                return None
            chord.parts.setdefault(part.task_id, (part.group_index, payload))
            if chord.size is None or len(chord.parts) < chord.size:
                return None
            held = chord.claimed_by is not None and chord.claim_until > now
            if held and chord.claimed_by != part.task_id:
                return None
            chord.claimed_by, chord.claim_until = part.task_id, now + lease
            parts = list(chord.parts.items())
        return in_group_order(
            (index, self.codec.decode_meta(data, task_id)) for task_id, (index, data) in parts
        )

    def chord_body_sent(self, group_id: str) -> None:
        with self._store.cond:
            chord = self._store.chords.get(group_id)
            if chord is not None:
                chord.parts.clear()
                chord.claimed_by, chord.done = None, True

    def close(self) -> None:
        """Nothing to release: the store lives as long as the process."""

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.url}>"
