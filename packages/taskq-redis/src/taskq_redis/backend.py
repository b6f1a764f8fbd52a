"""The Redis result backend: results where Celery's Redis backend keeps them, pushed to waiters.

``result_backend = "redis://host:6379/0"`` (also ``rediss://``, ``redis+socket://``,
``sentinel://``; URL forms in :mod:`taskq_redis.connection`). A Celery client reads what a
taskq worker stores and the other way round, a chord's parts may finish on either, and a group
saved by one restores on the other.

- **Results** (:mod:`taskq_redis.results_writer`): ``celery-task-meta-<id>`` holds the meta in
  the result serializer, written with ``result_expires`` and published on the same name in one
  round trip; a stored SUCCESS is never replaced (one Lua script checks and writes).
  ``store_many`` is one script call for the whole batch.
- **Waiting** (:mod:`taskq_redis.results_subscriber`): pub/sub, not polling. One connection
  per backend serves every waiting thread, and the waiting threads read it themselves (one at
  a time; no listener thread, no hand-over between threads). A wait for several tasks reads
  the keys first (finished work costs one MGET); then the missing ones are subscribed to and
  read again after the subscription: on RESP3 the GETs go out with the SUBSCRIBE in one write,
  on RESP2 the waiter reads once the subscription is confirmed. A wait for one task (``get()``)
  goes straight to that: one round trip whether the result is stored or not. After a lost
  connection the subscriber subscribes again and the keys are read again.
- **Groups**: ``celery-taskset-meta-<gid>`` holds ``{"result": <GroupResult tuple>}``, written
  like a result (expiry, publish).
- **Chords** (:mod:`taskq_redis.chords`): Celery 5.7.0's keys and rules; a report is one
  atomic script that claims a completed chord (``.c``), ``chord_body_sent`` a second one.
- **Keys** (:mod:`taskq_redis.backend_keys`): ``global_keyprefix`` as Celery applies it.
- **Lost connections** (:mod:`taskq_redis.backend_retry`): retried by ``retry_policy``, then
  :class:`~taskq.contracts.BackendError`.

Options (``result_backend_transport_options``): ``global_keyprefix``, ``result_chord_ordered``
(True), ``result_chord_expires`` (the longer of ``result_expires`` and a day), ``retry_policy``,
and the connection options of :mod:`taskq_redis.connection` (``socket_timeout``,
``max_connections``, ``master_name``, TLS, ...).

A process forked from one using the backend (a prefork pool child) makes its own subscriber
when it first waits; the parent's connections are left alone.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from taskq.backends.codec import ResultCodec
from taskq.contracts import CHORD_CLAIM_LEASE, BackendError, BackendOptions, ChordPart
from taskq.transports.options import BACKEND_OPTIONS
from taskq_protocol import ResultMeta, states
from taskq_redis.backend_keys import ResultKeys
from taskq_redis.backend_retry import RetryPolicy
from taskq_redis.certificates import CertificateSettings
from taskq_redis.chords import ChordCounter, chord_expiry
from taskq_redis.connection import client_from_url
from taskq_redis.direct import DirectConnection
from taskq_redis.options import read_bool, read_seconds, read_str
from taskq_redis.results_subscriber import ResultSubscriber
from taskq_redis.results_writer import ResultWriter, expiry_arguments

__all__ = ["RedisBackend", "RESULT_BACKEND"]

#: The setting the backend's URL comes from, named in errors.
RESULT_BACKEND = "result_backend"
#: Keys per MGET when reading many results: large joins are read in slices, not one command.
_MGET_CHUNK = 1000


class RedisBackend:
    """A :class:`~taskq.contracts.ResultBackend` on Redis, wire-compatible with Celery's."""

    schemes: tuple[str, ...] = ("redis", "rediss", "redis+socket", "sentinel")

    def __init__(self, url: str, options: BackendOptions) -> None:
        self.url = url
        self.codec = ResultCodec.from_options(options)
        self.expires = options.expires
        extra = options.transport_options
        self.keys = ResultKeys(read_str(extra, "global_keyprefix", "", BACKEND_OPTIONS) or "")
        chord_expires = chord_expiry(
            options.expires, read_seconds(extra, "result_chord_expires", None, BACKEND_OPTIONS)
        )
        self._client = client_from_url(
            url, extra, url_setting=RESULT_BACKEND, options_setting=BACKEND_OPTIONS
        )
        self.retry = RetryPolicy.from_options(
            extra, BACKEND_OPTIONS, CertificateSettings.of_backend(url, self._client)
        )
        # redis-py types its command methods loosely (unions with str, unknown pipelines);
        # calls go through this untyped alias and their results are typed where used.
        self._redis: Any = self._client
        #: Reads of stored results go here, past redis-py's per-command overhead.
        self._direct = DirectConnection(self._client)
        self._writer = ResultWriter(
            self._client, self._direct, self.codec.content_type, self._holds_success
        )
        self._chords = ChordCounter(
            self._client,
            self.keys,
            self.codec,
            ordered=read_bool(extra, "result_chord_ordered", True, BACKEND_OPTIONS),
            expires=chord_expires,
            # Celery's _chord_result_expires: a saved header group outlives its chord.
            group_expires=0
            if not chord_expires or options.expires is None
            else max(chord_expires, math.ceil(options.expires)),
        )
        self._lock = threading.Lock()
        self._subscriber: ResultSubscriber | None = None
        self._closed = False
        _instances.add(self)

    @property
    def client(self) -> redis.Redis:
        """The backend's Redis client (threads share its connection pool)."""
        return self._client

    def _holds_success(self, stored: bytes) -> bool:
        """Whether a stored meta the store script could not read is a SUCCESS."""
        try:
            record = self.codec.decode(stored)
        except Exception:  # unreadable: nothing worth keeping, the new write replaces it
            return False
        if not isinstance(record, dict):
            return False
        return cast("dict[str, object]", record).get("status") == states.SUCCESS

    # -- task results ---------------------------------------------------------------------------

    def store(self, meta: ResultMeta, *, expires: float | None = None) -> None:
        self.store_many((meta,), expires=expires)

    def store_many(self, metas: Iterable[ResultMeta], *, expires: float | None = None) -> None:
        entries = [(self.keys.task(meta.task_id), self.codec.encode_meta(meta)) for meta in metas]
        if not entries:
            return
        seconds = self.expires if expires is None else expires
        self.retry.call(
            lambda: self._writer.write(entries, seconds), f"store {len(entries)} result(s)"
        )

    def get(self, task_id: str) -> ResultMeta | None:
        key = self.keys.task(task_id)
        data: bytes | None = self.retry.call(
            lambda: self._direct.execute("GET", key), "read a result"
        )
        return None if data is None else self.codec.decode_meta(data, task_id)

    def wait(self, task_ids: Sequence[str], timeout: float | None) -> dict[str, ResultMeta]:
        wanted = list(dict.fromkeys(task_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        # Finished work (a join on a done group) costs one MGET and no subscription. Only
        # what is missing is subscribed to, and read again once the subscription is made (by
        # the subscriber itself, in the same write, on RESP3). One task (``get()``) is not read
        # first: subscribing reads it too, so a result stored or not costs one round trip.
        ready = self._read_ready(wanted) if len(wanted) > 1 or timeout == 0 else {}
        missing = [task_id for task_id in wanted if task_id not in ready]
        if not missing or (deadline is not None and deadline <= time.monotonic()):
            return ready
        by_channel = {self.keys.task(task_id).encode(): task_id for task_id in missing}
        subscriber = self._subscriber_here()
        subscription = subscriber.subscribe(by_channel)
        try:
            read_at = 0  # the read above was before generation 1, the first confirmed one
            while True:
                # A read that starts after every channel is confirmed misses nothing: what is
                # stored later is published to us.
                generation = subscription.generation
                if generation != read_at:
                    read_at = generation
                    ready.update(self._read_ready([t for t in missing if t not in ready]))
                if len(ready) == len(wanted):
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                for channel, payload in subscriber.take(subscription, read_at, remaining):
                    task_id = by_channel[channel]
                    if task_id not in ready:
                        meta = self.codec.decode_meta(payload, task_id)
                        if meta.ready:
                            ready[task_id] = meta
        finally:
            subscriber.unsubscribe(subscription)
        return ready

    def _read_ready(self, task_ids: list[str]) -> dict[str, ResultMeta]:
        found: dict[str, ResultMeta] = {}
        for start in range(0, len(task_ids), _MGET_CHUNK):
            chunk = task_ids[start : start + _MGET_CHUNK]
            values = self._mget([self.keys.task(task_id) for task_id in chunk])
            for task_id, data in zip(chunk, values, strict=True):
                if data is not None:
                    meta = self.codec.decode_meta(data, task_id)
                    if meta.ready:
                        found[task_id] = meta
        return found

    def _mget(self, keys: list[str]) -> list[bytes | None]:
        return self.retry.call(
            lambda: self._direct.execute("MGET", *keys), f"read {len(keys)} result(s)"
        )

    def _subscriber_here(self) -> ResultSubscriber:
        with self._lock:
            if self._closed:
                raise BackendError("the Redis result backend is closed")
            if self._subscriber is None:
                self._subscriber = ResultSubscriber(self._client, self.retry.certificates)
            return self._subscriber

    def forget(self, task_id: str) -> None:
        key = self.keys.task(task_id)
        self.retry.call(lambda: self._redis.delete(key), "forget a result")

    # -- groups ---------------------------------------------------------------------------------

    def save_group(self, group_id: str, result_tuple: list[Any]) -> None:
        key, value = self.keys.group(group_id), self.codec.encode_group(result_tuple)
        self.retry.call(lambda: self._set_and_publish(key, value), "save a group")

    def _set_and_publish(self, key: str, value: bytes) -> None:
        """Celery's ``RedisBackend._set``: SET with the result expiry, PUBLISH, one round trip."""
        unit, amount = expiry_arguments(self.expires)
        pipe = self._redis.pipeline(transaction=False)
        if unit:
            pipe.execute_command("SET", key, value, unit, amount)
        else:
            pipe.set(key, value)
        pipe.publish(key, value)
        pipe.execute()

    def restore_group(self, group_id: str) -> list[Any] | None:
        key = self.keys.group(group_id)
        data: bytes | None = self.retry.call(lambda: self._redis.get(key), "restore a group")
        return None if data is None else self.codec.decode_group(data)

    def delete_group(self, group_id: str) -> None:
        key = self.keys.group(group_id)
        self.retry.call(lambda: self._redis.delete(key), "delete a group")

    # -- chords ---------------------------------------------------------------------------------

    def set_chord_size(self, group_id: str, size: int) -> None:
        self.retry.call(lambda: self._chords.set_size(group_id, size), "set a chord's size")

    def chord_part_done(
        self, part: ChordPart, *, lease: float = CHORD_CLAIM_LEASE
    ) -> list[ResultMeta] | None:
        return self.retry.call(lambda: self._chords.part_done(part, lease), "count a chord part")

    def chord_body_sent(self, group_id: str) -> None:
        self.retry.call(lambda: self._chords.body_sent(group_id), "mark a chord done")

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.close()
        self._direct.close()
        self._client.close()

    def _forget_parent_subscriber(self) -> None:
        """In a forked child: the parent's subscriber connection is not ours; start afresh."""
        self._lock = threading.Lock()
        self._subscriber = None

    def __repr__(self) -> str:
        from taskq.urls import mask_url

        return f"<RedisBackend {mask_url(self.url)}>"


_instances: weakref.WeakSet[RedisBackend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_instances):
        backend._forget_parent_subscriber()  # pyright: ignore[reportPrivateUsage]


os.register_at_fork(after_in_child=_after_fork_in_child)
