"""Giving unacknowledged deliveries back to their queues, the way kombu gives them back.

Three paths lead here: a delivery whose visibility timeout passed (any consumer's, taskq's or
Celery's: :func:`restore_expired`, under kombu's ``unacked_mutex`` so a Celery worker restoring
at the same time never doubles a message), a reject with requeue, and a transport closing with
deliveries in hand. Each message is marked redelivered as kombu marks it (``headers.redelivered``
and ``properties.delivery_info.redelivered``), which is also what makes the next fetch count it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any, cast

from redis.exceptions import LockError

from taskq_redis.bindings import match_queues
from taskq_redis.commands import Commands
from taskq_redis.keys import KeyLayout, message_priority
from taskq_redis.scripts import GIVE_BACK

__all__ = ["GiveBack", "mark_redelivered", "restore_expired", "RESTORE_BATCH"]

logger = logging.getLogger("taskq_redis.transport")

#: Deliveries read per round trip while restoring.
RESTORE_BATCH = 100


def mark_redelivered(message: bytes) -> tuple[bytes, int]:
    """The message with kombu's redelivered flags set, and its priority as kombu reads it.

    Parsed and written with the standard JSON module, which reproduces every value exactly
    (kombu's type markers stay the plain objects they are on the wire).
    """
    envelope: Any = json.loads(message)
    if not isinstance(envelope, dict):
        raise ValueError("not a JSON object")
    parsed = cast("dict[str, Any]", envelope)
    return _flagged(parsed), _priority(parsed)


def _flagged(envelope: dict[str, Any]) -> bytes:
    headers: Any = envelope.get("headers")
    if isinstance(headers, dict):
        headers["redelivered"] = True
    properties: Any = envelope.get("properties")
    if isinstance(properties, dict):
        info: Any = cast("dict[str, Any]", properties).get("delivery_info")
        if isinstance(info, dict):
            info["redelivered"] = True
    return json.dumps(envelope, ensure_ascii=False).encode("utf-8")


def _priority(envelope: dict[str, Any]) -> int:
    properties: Any = envelope.get("properties")
    return message_priority(properties) if isinstance(properties, dict) else 0  # pyright: ignore[reportUnknownArgumentType]


class GiveBack:
    """One GIVE_BACK call being put together: the deliveries and the lists they go to."""

    def __init__(self, layout: KeyLayout) -> None:
        self.layout = layout
        self._lists: dict[str, int] = {}
        self._args: list[str | bytes] = []

    def __len__(self) -> int:
        return len(self._args) // 5

    def push(
        self,
        tag: str | bytes,
        message: bytes,
        priority: int,
        queues: list[str],
        *,
        head: bool,
        score: float | None = None,
    ) -> None:
        """Put ``message`` (already marked redelivered) back on ``queues``: at the head
        (served next, as kombu restores) or at the tail (as kombu requeues a reject)."""
        lists = (self._list_index(self.layout.list_for(queue, priority)) for queue in queues)
        self._add(tag, score, ",".join(map(str, lists)), message, "R" if head else "L")

    def forget(self, tag: str | bytes, score: float | None) -> None:
        """Remove an index entry whose hash entry is gone (kombu removes those too)."""
        self._add(tag, score, "", b"", "R")

    def drop(self, tag: str | bytes, score: float | None) -> None:
        """Remove an entry that can never be restored (its record is not readable)."""
        self._add(tag, score, "-", b"", "R")

    def _add(
        self, tag: str | bytes, score: float | None, targets: str, message: bytes, side: str
    ) -> None:
        self._args += [tag, "" if score is None else repr(score), targets, message, side]

    def _list_index(self, key: str) -> int:
        index = self._lists.get(key)
        if index is None:
            index = self._lists[key] = len(self._lists) + 1
        return index

    def run(self, client: Commands) -> int:
        """Apply it in one atomic step; how many messages went back."""
        if not self._args:
            return 0
        keys = [self.layout.unacked, self.layout.unacked_index, *self._lists]
        moved = GIVE_BACK(client, keys, self._args)
        return moved if isinstance(moved, int) else 0


def restore_expired(
    client: Commands,
    layout: KeyLayout,
    *,
    visibility_timeout: float,
    mutex_expire: float,
    limit: int | None,
    deadletter_queue: str | None,
) -> int | None:
    """Give back every delivery older than the visibility timeout; how many went back.

    None when another consumer (taskq or Celery) holds ``unacked_mutex``: it is restoring now.
    """
    lock = client.lock(layout.unacked_mutex, timeout=mutex_expire)
    if not lock.acquire(blocking=False):
        return None
    restored = 0
    try:
        tables: dict[str, list[bytes]] = {}
        while limit is None or restored < limit:
            batch = RESTORE_BATCH if limit is None else min(RESTORE_BATCH, limit - restored)
            ceiling = time.time() - visibility_timeout
            rows = client.zrangebyscore(
                layout.unacked_index, "-inf", ceiling, start=0, num=batch, withscores=True
            )
            if not rows:
                break
            records = client.hmget(layout.unacked, [tag for tag, _ in rows])
            plan = GiveBack(layout)
            for (tag, score), record in zip(rows, records, strict=True):
                _plan_restore(client, layout, plan, tag, score, record, tables, deadletter_queue)
            restored += plan.run(client)
            if len(rows) < batch:
                break
    finally:
        # LockError: it expired meanwhile and someone else may hold it now.
        with contextlib.suppress(LockError):
            lock.release()
    if restored:
        logger.info("Restored %d unacknowledged message(s) past their visibility timeout", restored)
    return restored


def _plan_restore(
    client: Commands,
    layout: KeyLayout,
    plan: GiveBack,
    tag: bytes,
    score: float,
    record: bytes | None,
    tables: dict[str, list[bytes]],
    deadletter_queue: str | None,
) -> None:
    if record is None:
        plan.forget(tag, score)
        return
    try:
        loaded: Any = json.loads(record)
        if not (isinstance(loaded, list) and len(cast("list[Any]", loaded)) == 3):
            raise ValueError("not [message, exchange, routing_key]")
        envelope, exchange, routing_key = cast("list[Any]", loaded)
        if not isinstance(envelope, dict):
            raise ValueError("the message is not a JSON object")
        queues = _route(
            client, layout, _text(exchange), _text(routing_key), tables, deadletter_queue
        )
        message = _flagged(envelope)  # pyright: ignore[reportUnknownArgumentType]
    except (ValueError, TypeError) as exc:
        logger.error(
            "Dropping unacked entry %r: it cannot be restored (%s): %.1000r", tag, exc, record
        )
        plan.drop(tag, score)
        return
    plan.push(tag, message, _priority(envelope), queues, head=True, score=score)  # pyright: ignore[reportUnknownArgumentType]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _route(
    client: Commands,
    layout: KeyLayout,
    exchange: str,
    routing_key: str,
    tables: dict[str, list[bytes]],
    deadletter_queue: str | None,
) -> list[str]:
    """The queues kombu's ``_lookup`` finds for a restored message.

    Where kombu finds none it drops the message (or uses ``deadletter_queue``); here the
    routing key is taken as the queue's name, which it is under Celery's default routing.
    """
    if not exchange:
        if routing_key or deadletter_queue:
            return [routing_key or deadletter_queue or ""]
        raise ValueError("it names neither an exchange nor a routing key")
    members = tables.get(exchange)
    if members is None:
        members = tables[exchange] = list(client.smembers(layout.binding(exchange)))
    queues = match_queues(members, layout.sep, routing_key)
    if queues:
        return queues
    fallback = deadletter_queue or routing_key
    logger.warning(
        "No binding of exchange %r matches routing key %r; restoring to queue %r",
        exchange,
        routing_key,
        fallback,
    )
    return [fallback]
