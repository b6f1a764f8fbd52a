"""``redis://``, ``rediss://``, ``redis+socket://``, ``sentinel://``: the Redis transport.

It stores messages exactly where and how kombu's Redis transport stores them (see
:mod:`taskq_redis.keys`), so Celery clients and workers share the broker with taskq's: either
side publishes, either side consumes, either side restores what the other abandoned.

- **Publish**: LPUSH of kombu's JSON envelope to the queue's list for its priority step.
- **Fetch**: one script moves the queues' due delayed messages into their lists, pops up to
  ``limit`` messages (priority step first, then queue order, then FIFO) and records each as an
  unacked delivery the way kombu's ack emulation does. With nothing ready it blocks on
  BLMPOP/BRPOP over the queues' wake-up lists and then all their lists, no longer than until
  the next delayed message is due or the oldest delivery's visibility timeout passes, with
  the fetch script queued behind the wait on the same connection: one round trip. taskq's
  publish pushes a wake-up token before the message while a taskq consumer waits, so the
  script, not the wait, takes a message taskq published. A message pushed by Celery is taken
  by the wait and recorded by a second call: in between it exists only in this process, as
  in kombu's consumer between BRPOP and its ack bookkeeping, and a crash then loses it.
  Under load the blocking path is never taken.
- **Visibility**: a delivery not acked within ``visibility_timeout`` (3600 s) is given back to
  the head of its queue, marked redelivered, by whichever consumer, taskq or Celery, looks
  first; ``extend`` pushes the deadline of long tasks forward. A clean ``close`` gives back this
  instance's deliveries at once (kombu's ``restore_at_shutdown``).
- **Delay**: ``publish(..., eta=t)`` keeps the message in ``_taskq.delayed.<queue>`` until
  ``t``; the fetch that finds it due moves it to the tail of its list, exactly once. With the
  option ``delayed_delivery=False`` it goes to the list at once and the worker that takes it
  holds it until due, which is what Celery does: for clients whose queues only Celery workers
  consume (it breaks the contract for taskq workers, which give early messages back to wait).
- **Requeue**: ``reject(requeue=True)`` puts the message at the *tail* of its queue, as kombu
  does, so a message that keeps failing does not starve the others.
- **Counting**: ``queue_length`` and ``purge`` cover the lists and the delayed set; deliveries
  whose timeout passed count again once they are restored.
- **Direct exchanges**: ``declare_queue`` with an exchange writes kombu's binding;
  ``send_direct`` reads the table and pushes to each queue bound with the routing key, in one
  script (how remote-control replies reach ``<oid>.reply.celery.pidbox``). ``delete_queue``
  drops the lists, the delayed set, this instance's deliveries of the queue and the bindings
  this instance declared (kombu's ``queue_delete`` also knows only its own).
- **Fanout**: ``broadcast``/``subscribe`` are kombu's pub/sub channels (``/0.celery.pidbox``),
  at most once.

Requires Redis 6.2 or later (7.0 for the single-call BLMPOP wake-up; older servers use BRPOP).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, NamedTuple

import redis
from redis.exceptions import NoScriptError

from taskq.contracts import Delivery, QueueSpec, TransportError, dead_letter_queue
from taskq.transports.checks import (
    check_limit,
    check_queue,
    check_queues,
    check_seconds,
    visible_at,
)
from taskq.transports.dead_letter import dead_lettered
from taskq.transports.unacked import Unacked
from taskq_protocol import Envelope, ProtocolError
from taskq_redis.bindings import binding_member, binding_ttl_ms, expires_ms
from taskq_redis.certificates import CertificateSettings
from taskq_redis.commands import commands
from taskq_redis.connection import client_from_url, parse_redis_url
from taskq_redis.direct import DirectConnection
from taskq_redis.fanout import FanoutListener
from taskq_redis.keys import KeyLayout, message_priority
from taskq_redis.restore import GiveBack, mark_redelivered, restore_expired
from taskq_redis.scripts import (
    ACK,
    DEAD_LETTER,
    DELETE_QUEUE,
    FETCH,
    PUBLISH,
    REFRESH_BINDING,
    SEND_DIRECT,
    WAKE_SOURCE,
)
from taskq_redis.transport_options import TransportOptions

__all__ = ["RedisTransport", "RedisHandle"]

logger = logging.getLogger("taskq_redis.transport")

#: Delayed messages one fetch moves per queue; more wait for the next fetch, so one call
#: never holds the server for long when a million messages fall due at once.
MAX_DUE_MOVES = 1000
#: A blocking wait shorter than this is not worth a round trip: sleep instead.
_MIN_BLOCK = 0.01
#: The most deliveries one fetch restores when ``unacked_restore_limit`` does not say.
_RESTORE_PER_FETCH = 1000
#: redis-py's read timeout when the options set none; a blocking wait stays below it.
_DEFAULT_SOCKET_TIMEOUT = 5.0
#: Messages per ``LPUSH``/``ZADD`` of ``publish_many``: one command each would cost the client
#: more than the server; one for a million would make one huge request that blocks the server.
_PUSH_CHUNK = 1000


class RedisHandle:
    """What a :class:`~taskq.contracts.Delivery` of this transport points at."""

    __slots__ = ("counted", "message", "order", "queue", "tag")

    def __init__(self, tag: str, queue: str, message: bytes, counted: str, order: int) -> None:
        #: The key of this delivery in ``unacked``: unique to one delivery.
        self.tag = tag
        self.queue = queue
        #: The message as it was stored, given back as it is on requeue or close.
        self.message = message
        #: The envelope's ``delivery_tag`` when a delivery count is stored for it, else "".
        self.counted = counted
        #: Fetch order, so ``close()`` gives messages back in the order they came.
        self.order = order


class _Plan(NamedTuple):
    """The keys and arguments of a fetch over one ordered list of queues."""

    queues: tuple[str, ...]
    keys: list[str]
    #: Script arguments after (now, limit, tag prefix) and before the popped messages.
    middle: list[str | int]
    lists: list[str]
    #: What an idle fetch blocks on: the queues' wake-up lists, then their lists.
    blocking: list[str]
    #: List key (as Redis returns it) -> queue position (1-based, as the script counts);
    #: 0 for a wake-up list.
    queue_of_list: dict[bytes, int]


@contextlib.contextmanager
def _broker_errors(
    action: str, certificates: CertificateSettings | None = None
) -> Generator[None, None, None]:
    """redis-py's errors as TransportError, so the caller knows it may retry; with
    ``certificates``, a certificate that does not verify as ImproperlyConfigured instead,
    which no retry fixes."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        misconfigured = None if certificates is None else certificates.error(exc)
        if misconfigured is not None:
            raise misconfigured from exc
        raise TransportError(f"Redis {action} failed: {exc}") from exc


class RedisTransport:
    """A taskq transport on Redis that Celery's kombu reads and writes alike."""

    schemes: tuple[str, ...] = ("redis", "rediss", "redis+socket", "sentinel")

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.options = TransportOptions.read(options)
        self.visibility_timeout = self.options.visibility_timeout
        parsed = parse_redis_url(url)
        self._client = client_from_url(url, options)
        self._redis = commands(self._client)
        opts = self.options
        #: Single publishes (posted, unless ``confirm_publish``), the worker's fetches and
        #: acknowledgements go here, past redis-py's per-command overhead.
        self._direct = DirectConnection(
            self._client, window=opts.confirm_window, max_age=opts.confirm_max_age
        )
        self.keys = KeyLayout(
            prefix=opts.global_keyprefix,
            sep=opts.sep,
            priority_steps=opts.priority_steps,
            unacked=opts.unacked_key,
            unacked_index=opts.unacked_index_key,
            unacked_mutex=opts.unacked_mutex_key,
            fanout_prefix=opts.fanout_prefix,
            fanout_patterns=opts.fanout_patterns,
            db=parsed.db,
        )
        socket_timeout = self._client.connection_pool.connection_kwargs.get("socket_timeout")
        socket_timeout = socket_timeout or _DEFAULT_SOCKET_TIMEOUT
        self._block_cap = max(socket_timeout - 1.0, socket_timeout / 2)
        #: How long an idle fetch's waiting markers last: past its longest wait.
        self._waiting_ms = int(self._block_cap * 1000) + 2000
        self._unacked = Unacked(RedisHandle, "Redis")
        # Delivery tags are "<instance>.<fetch>.<n>": unique without a round trip. The 64
        # characters also make every tag longer than Redis's zset-max-listpack-value (64), so
        # unacked_index is a skiplist from its first member: a listpack's inserts scan every
        # entry, which measured 6.6 us per delivered message at 100 in flight, against 0.5.
        self._instance = secrets.token_hex(32)
        self._fetches = itertools.count(1)
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._lock = threading.Lock()
        self._connected = False
        self._blmpop = True
        self._restore_after = 0.0
        self._fanout: FanoutListener | None = None
        #: Queues declared here with x-expires (ms), and their bindings (table key, member).
        self._expires: dict[str, int] = {}
        self._expiring_bindings: dict[str, list[tuple[str, str, str]]] = {}
        #: Every binding declared here, by queue: (exchange, member), for ``delete_queue``.
        self._bindings: dict[str, set[tuple[str, str]]] = {}
        self._refresh_after = 0.0
        self._round_robin: list[str] = []
        _instances.add(self)

    def _after_fork_in_child(self) -> None:
        """A forked child (a prefork pool process) inherits this object but none of its
        threads: fresh locks, no listener, and none of the parent's deliveries, so nothing
        the child does can give back or settle what the parent holds."""
        self._lock = threading.Lock()
        self._unacked = Unacked(RedisHandle, "Redis")
        self._fanout = None
        self._instance = secrets.token_hex(32)  # its tags must not repeat the parent's
        # redis-py's pool notices the new pid and opens its own connections.

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> None:
        """Check the server answers and learn whether it has BLMPOP (Redis 7).

        A server (or Sentinel) whose certificate does not verify raises ImproperlyConfigured
        naming the TLS setting, not TransportError: the worker then stops at start instead of
        reconnecting for ever. Later operations, on a connection that verified here, keep
        reporting TransportError.
        """
        with self._lock:
            if self._connected:
                return
            certificates = CertificateSettings.of_broker(self.url, self._client)
            with _broker_errors("connect", certificates):
                try:
                    version = str(self._redis.info("server").get("redis_version", "7"))
                except redis.ResponseError:
                    # An ACL without INFO (@dangerous): assume BLMPOP, fall back if refused.
                    self._redis.execute_command("PING")
                    version = "7"
            major = version.split(".", maxsplit=1)[0]
            self._blmpop = major.isdigit() and int(major) >= 7
            self._connected = True

    def close(self) -> None:
        """Wait for Redis's replies to what was published, give back what is held, and
        disconnect; raises (after closing) if a publish was refused or never answered."""
        try:
            self.flush()
        except TransportError as exc:
            unconfirmed: TransportError | None = exc
        else:
            unconfirmed = None
        with self._lock:
            fanout, self._fanout = self._fanout, None
        if fanout is not None:
            fanout.stop()
        handles = self._unacked.take_all()
        if handles:
            # Latest first at the head, so the earliest ends up served first.
            handles.sort(key=lambda handle: handle.order, reverse=True)
            try:
                self._give_back(handles, head=True)
            except TransportError as exc:
                logger.warning(
                    "Could not give back %d unacked message(s) on close (%s); they return "
                    "after the visibility timeout",
                    len(handles),
                    exc,
                )
        self._direct.close()
        self._client.close()
        self._client.connection_pool.disconnect()
        if unconfirmed is not None:
            raise unconfirmed

    def flush(self) -> None:
        """Wait until Redis has answered every publish sent so far (they are sent without
        waiting, see :mod:`taskq_redis.direct`); TransportError if it refused one."""
        direct = self._direct
        if direct.unanswered or direct.refused:  # a worker asks after every task
            with _broker_errors("publish"):
                direct.flush()

    @property
    def unconfirmed(self) -> int:
        """Publishes Redis has not answered yet."""
        return self._direct.unanswered

    # -- queues -----------------------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        """Write the queue's binding the way kombu does; remember ``x-expires``.

        The lists need no declaring. A queue with ``x-expires`` (ms) gets its lists' expiry
        pushed forward whenever this transport publishes to or fetches from it, and its
        binding's deadline kept fresh, as kombu does.
        """
        name = check_queue(spec.name)
        expires = expires_ms(spec)
        with self._lock:
            if expires is None:
                self._expires.pop(name, None)
                self._expiring_bindings.pop(name, None)
            else:
                self._expires[name] = expires
            self._plans.clear()
        if not spec.exchange:
            return  # the anonymous exchange routes by queue name: no table
        member = binding_member(self.keys, spec)
        table = self.keys.binding(spec.exchange)
        with self._lock:
            self._bindings.setdefault(name, set()).add((spec.exchange, member))
        with _broker_errors("declare_queue"):
            if expires is None:
                pipe = self._redis.pipeline()
                pipe.sadd(table, member)
                pipe.sadd(self.keys.binding_permanent(spec.exchange), member)
                pipe.execute()
            else:
                binding = (table, member, spec.exchange)
                with self._lock:
                    self._expiring_bindings.setdefault(name, []).append(binding)
                self._refresh_binding(binding, expires)

    def delete_queue(self, name: str) -> None:
        """Drop the queue's lists and delayed set, settle this instance's deliveries of it
        (so closing does not bring them back) and remove the bindings declared here, from
        both of kombu's tables (``Channel._delete``)."""
        queue = check_queue(name)
        with self._lock:
            bindings = self._bindings.pop(queue, set())
            self._expires.pop(queue, None)
            self._expiring_bindings.pop(queue, None)
            self._plans.clear()
        held = self._unacked.take_where(lambda handle: handle.queue == queue)
        if held:
            self._settle(held, "delete_queue")
        doomed = [*self.keys.lists(queue), self.keys.delayed(queue)]
        tables: list[str] = []
        members: list[str] = []
        for exchange, member in sorted(bindings):
            tables += (self.keys.binding(exchange), self.keys.binding_permanent(exchange))
            members += (member, member)
        with _broker_errors("delete_queue"):
            DELETE_QUEUE(self._redis, [*doomed, *tables], [len(doomed), *members])

    def _refresh_binding(self, binding: tuple[str, str, str], expires: int) -> None:
        table, member, exchange = binding
        REFRESH_BINDING(
            self._redis,
            [table, self.keys.binding_deadlines],
            [member, exchange, binding_ttl_ms(expires)],
        )

    def _refresh_expiring(self, queues: Sequence[str]) -> None:
        """Keep expiring queues (and their bindings) alive while they are in use."""
        expiring = [(q, self._expires[q]) for q in queues if q in self._expires]
        if not expiring or time.monotonic() < self._refresh_after:
            return
        self._refresh_after = time.monotonic() + min(ms for _, ms in expiring) / 1000 / 3
        with _broker_errors("refresh x-expires"):
            pipe = self._redis.pipeline(transaction=False)
            for queue, ms in expiring:
                for key in self.keys.lists(queue):
                    pipe.pexpire(key, ms)
            pipe.execute()
            for queue, ms in expiring:
                for binding in self._expiring_bindings.get(queue, ()):
                    self._refresh_binding(binding, ms)

    def purge(self, queue: str) -> int:
        name = check_queue(queue)
        self.flush()  # what was published before is purged too
        with _broker_errors("purge"):
            pipe = self._redis.pipeline()
            for key in self.keys.lists(name):
                pipe.llen(key)
                pipe.delete(key)
            pipe.zcard(self.keys.delayed(name))
            pipe.delete(self.keys.delayed(name))
            replies: list[Any] = pipe.execute()
        return sum(int(n) for n in replies[::2])

    def queue_length(self, queue: str) -> int:
        name = check_queue(queue)
        self.flush()  # what was published before counts
        with _broker_errors("queue_length"):
            pipe = self._redis.pipeline(transaction=False)
            for key in self.keys.lists(name):
                pipe.llen(key)
            pipe.zcard(self.keys.delayed(name))
            replies: list[Any] = pipe.execute()
        return sum(int(n) for n in replies)

    # -- publishing -------------------------------------------------------------------------

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        if eta is not None or queue in self._expires:
            self.publish_many([(queue, envelope, eta)])
            return
        check_queue(queue)
        message = envelope.encode()
        keys = self.keys
        target = keys.list_for(queue, message_priority(envelope.properties))
        with _broker_errors("publish"):
            self._publish_one(keys.wake(queue), keys.waiting(queue), target, message)

    def _publish_one(self, wake: str, waiting: str, target: str, message: bytes) -> None:
        """The common case as one EVALSHA on the transport's direct connection (see
        :mod:`taskq_redis.direct`), loading the script on NOSCRIPT: posted without waiting
        for the reply, unless ``confirm_publish``."""
        keys = (wake, waiting, target)
        if self.options.confirm_publish:
            PUBLISH.run_direct(self._direct, self._redis, keys, (message,))
        else:
            PUBLISH.post_direct(self._direct, keys, (message,))

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        """One pipeline of few commands: per queue its wake-up, then one ``LPUSH`` per list
        holding all of that list's messages in their order (as many single pushes would), and
        one ``ZADD`` per delayed set, in chunks of ``_PUSH_CHUNK``. Lists are independent, so
        only the order within each list matters."""
        if not items:
            return
        now = time.time()
        keys = self.keys
        delayed_delivery = self.options.delayed_delivery
        expires = self._expires
        pushes: dict[str, list[bytes]] = {}
        woken: list[str] = []  # queues given a message now, in order of their first
        delayed: dict[str, list[float | bytes]] = {}  # key -> score, member, score, member...
        touched: set[str] = set()
        for queue, envelope, eta in items:
            check_queue(queue)
            message = envelope.encode()
            priority = message_priority(envelope.properties)
            when = visible_at(eta, now)
            if delayed_delivery and when > now:
                # Unique even for a message published twice: each copy is delivered.
                member = b"%d:%s:%s" % (priority, secrets.token_hex(16).encode(), message)
                delayed.setdefault(keys.delayed(queue), []).extend((when, member))
            else:
                target = keys.list_for(queue, priority)
                messages = pushes.get(target)
                if messages is None:
                    messages = pushes[target] = []
                    if queue not in woken:
                        woken.append(queue)
                messages.append(message)
            if expires and queue in expires:
                touched.add(queue)
        pipe: Any = self._redis.pipeline(transaction=False)
        for queue in woken:
            # Before the messages (see scripts.WAKE_SOURCE). EVAL, not EVALSHA: a NOSCRIPT
            # inside the batch would fail it after its pushes were done.
            pipe.eval(WAKE_SOURCE, 2, keys.wake(queue), keys.waiting(queue))
        for target, messages in pushes.items():
            for start in range(0, len(messages), _PUSH_CHUNK):
                pipe.execute_command("LPUSH", target, *messages[start : start + _PUSH_CHUNK])
        for key, pairs in delayed.items():
            for start in range(0, len(pairs), 2 * _PUSH_CHUNK):
                pipe.execute_command("ZADD", key, *pairs[start : start + 2 * _PUSH_CHUNK])
        for queue in touched:
            for key in keys.lists(queue):
                pipe.pexpire(key, expires[queue])
        with _broker_errors("publish"):
            pipe.execute()

    # -- consuming --------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = check_queues(queues)
        check_limit(limit)
        deadline = time.monotonic() + max(float(timeout), 0.0)
        if self._expires:
            self._refresh_expiring(names)
        plan = self._plan(names)
        while True:
            now = time.time()
            deliveries, next_due, oldest = self._fetch_ready(plan, limit, now, None)
            restore_at = None if oldest is None else oldest + self.visibility_timeout
            if restore_at is not None and restore_at <= now and self._restore_allowed():
                self._restore_expired()
                if not deliveries:
                    continue  # what came back may be ready now
            if deliveries:
                return deliveries
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, self._block_cap)
            if next_due is not None:
                wait = min(wait, next_due - now)
            if restore_at is not None:
                wait = min(wait, max(restore_at - now, self._restore_after - time.monotonic()))
            if wait < _MIN_BLOCK:
                time.sleep(max(wait, 0.0))
                continue
            deliveries = self._block_and_fetch(plan, wait, limit)
            if deliveries:
                return deliveries

    def _plan(self, names: list[str]) -> _Plan:
        order = self._ordered(names)
        plan = self._plans.get(order)
        if plan is None:
            plan = self._make_plan(order)
            with self._lock:
                if len(self._plans) > 64:
                    self._plans.clear()
                self._plans[order] = plan
        return plan

    def _ordered(self, names: list[str]) -> tuple[str, ...]:
        strategy = self.options.queue_order_strategy
        if strategy == "sorted":
            return tuple(sorted(names))
        if strategy == "round_robin":
            # kombu's round_robin_cycle: the queue that served last moves to the back.
            rotated = [q for q in self._round_robin if q in names]
            return tuple(rotated + [q for q in names if q not in rotated])
        return tuple(names)

    def _make_plan(self, queues: tuple[str, ...]) -> _Plan:
        keys = self.keys
        steps = keys.priority_steps
        per_queue = [keys.lists(queue) for queue in queues]
        lists = [per_queue[q][s] for s in range(len(steps)) for q in range(len(queues))]
        queue_of_list = {
            per_queue[q][s].encode(): q + 1 for s in range(len(steps)) for q in range(len(queues))
        }
        wakes = [keys.wake(queue) for queue in queues]
        waiting = [keys.waiting(queue) for queue in queues]
        queue_of_list.update((wake.encode(), 0) for wake in wakes)
        middle: list[str | int] = [
            MAX_DUE_MOVES,
            len(queues),
            len(steps),
            *steps,
            *(json.dumps(queue) for queue in queues),
        ]
        return _Plan(
            queues=queues,
            keys=[
                keys.unacked,
                keys.unacked_index,
                keys.deliveries,
                *(keys.delayed(queue) for queue in queues),
                *lists,
                *wakes,
                *waiting,
            ],
            middle=middle,
            lists=lists,
            blocking=[*wakes, *lists],
            queue_of_list=queue_of_list,
        )

    def _fetch_ready(
        self, plan: _Plan, limit: int, now: float, popped: tuple[int, list[bytes]] | None
    ) -> tuple[list[Delivery], float | None, float | None]:
        """Run the fetch script; the deliveries, the next due time, the oldest delivery."""
        seq, args = self._fetch_args(plan, limit, repr(now), popped)
        with _broker_errors("fetch"):
            reply: Any = FETCH.run_direct(self._direct, self._redis, plan.keys, args)
        return self._deliveries(plan, reply, seq)

    def _fetch_args(
        self, plan: _Plan, limit: int, now: str, popped: tuple[int, list[bytes]] | None
    ) -> tuple[int, list[str | bytes | int | float]]:
        """The fetch's sequence number and the script's ARGV."""
        seq = next(self._fetches)
        prefix = f"{self._instance}.{seq}."
        popped_queue, messages = popped if popped is not None else (0, [])
        # ARGV: now, limit, tag prefix, max moves, nq, ns, popped queue, np, steps, names, popped
        middle = plan.middle
        args: list[str | bytes | int | float] = [
            now,
            limit,
            prefix,
            middle[0],
            middle[1],
            middle[2],
            popped_queue,
            len(messages),
            *middle[3:],
            *messages,
            self._waiting_ms,
        ]
        return seq, args

    def _deliveries(
        self, plan: _Plan, reply: list[Any], seq: int
    ) -> tuple[list[Delivery], float | None, float | None]:
        next_due = float(reply[0]) if reply[0] else None
        oldest = float(reply[1]) if reply[1] else None
        deliveries: list[Delivery] = []
        broken: list[tuple[str, str, bytes, str]] = []
        queues = plan.queues
        order = seq << 20
        decode = Envelope.decode
        for i in range(2, len(reply), 4):
            position: int = reply[i]
            queue = queues[position - 1]
            tag: str = reply[i + 1].decode()
            count: int = reply[i + 2]
            message: bytes = reply[i + 3]
            try:
                envelope = decode(message)
            except ProtocolError as exc:
                broken.append((queue, tag, message, str(exc)))
                continue
            counted = (envelope.delivery_tag or "") if count > 1 else ""
            order += 1
            deliveries.append(
                Delivery(
                    queue=queue,
                    envelope=envelope,
                    tag=tag,
                    deliveries=count,
                    handle=RedisHandle(tag, queue, message, counted, order),
                )
            )
        if broken:
            self._dead_letter_unreadable(broken)
        if deliveries:
            self._unacked.add(deliveries)
            if self.options.queue_order_strategy == "round_robin":
                last = deliveries[-1].queue
                self._round_robin = [q for q in plan.queues if q != last] + [last]
        return deliveries, next_due, oldest

    def _block_and_fetch(self, plan: _Plan, wait: float, limit: int) -> list[Delivery]:
        """Wait up to ``wait`` seconds for something on the queues, and fetch, in one round trip.

        A blocking pop over the wake-up lists and then the lists is sent together with the
        fetch script, which Redis runs as soon as the pop returns. A message published by
        taskq wakes the pop with its token (pushed first, see ``scripts.PUBLISH``), and the
        script pops and records the message itself: it is never outside Redis unrecorded. A
        message pushed by anything else (Celery) is what the pop takes: it is recorded by a
        second call, as before, and exists only in this process until then. If the script
        found a batch too, the newest beyond ``limit`` go back to the head of their lists
        as they were (never handed out), so the oldest are served first.
        """
        seconds = round(wait, 3)
        blocking = plan.blocking
        seq, args = self._fetch_args(plan, limit, "", None)
        pipe: Any = self._redis.pipeline(transaction=False)
        if self._blmpop:
            pipe.execute_command(
                "BLMPOP", seconds, len(blocking), *blocking, "RIGHT", "COUNT", limit
            )
        else:
            pipe.execute_command("BRPOP", *blocking, seconds)
        pipe.execute_command("EVALSHA", FETCH.sha, len(plan.keys), *plan.keys, *args)
        with _broker_errors("fetch"):
            woken, fetched = pipe.execute(raise_on_error=False)
        popped: tuple[int, list[bytes]] | None = None
        if isinstance(woken, redis.ResponseError):
            if self._blmpop and "unknown command" in str(woken).lower():
                self._blmpop = False  # Redis < 7
            else:
                raise TransportError(f"Redis fetch failed: {woken}") from woken
        elif woken:
            messages = list(woken[1]) if self._blmpop else [woken[1]]
            position = plan.queue_of_list[woken[0]]
            if position:
                popped = (position, messages)
        deliveries: list[Delivery] = []
        if isinstance(fetched, Exception):
            if popped is None:
                if isinstance(fetched, NoScriptError):
                    return []  # the next fetch loads the script
                raise TransportError(f"Redis fetch failed: {fetched}") from fetched
        else:
            deliveries, _, _ = self._deliveries(plan, fetched, seq)
        if popped is None:
            return deliveries
        recorded, _, _ = self._record_popped(plan, len(popped[1]), popped)
        deliveries = recorded + deliveries
        if len(deliveries) > limit:
            self._return_unsent(deliveries[limit:])
            deliveries = deliveries[:limit]
        return deliveries

    def _return_unsent(self, surplus: Sequence[Delivery]) -> None:
        """Put recorded deliveries never handed out back at the head of their lists, as they
        were (not marked redelivered), the newest first so the oldest is served next."""
        handles = self._unacked.handles(surplus)
        plan = GiveBack(self.keys)
        for delivery, handle in reversed(list(zip(surplus, handles, strict=True))):
            priority = message_priority(delivery.envelope.properties)
            plan.push(handle.tag, handle.message, priority, [handle.queue], head=True)
        try:
            with _broker_errors("give back"):
                plan.run(self._redis)
        finally:
            self._unacked.settled(handles)

    def _record_popped(
        self, plan: _Plan, limit: int, popped: tuple[int, list[bytes]]
    ) -> tuple[list[Delivery], float | None, float | None]:
        """Record what a blocking pop took; one retry, as the messages exist only here."""
        try:
            return self._fetch_ready(plan, limit, time.time(), popped)
        except TransportError as first:
            logger.warning(
                "Recording %d popped message(s) failed (%s); retrying", len(popped[1]), first
            )
            time.sleep(0.05)
            try:
                return self._fetch_ready(plan, limit, time.time(), popped)
            except TransportError:
                logger.error(
                    "Lost %d message(s) popped from %r: Redis failed before they were recorded",
                    len(popped[1]),
                    plan.queues[popped[0] - 1],
                )
                raise

    def _dead_letter_unreadable(self, broken: list[tuple[str, str, bytes, str]]) -> None:
        # Not an envelope, so no header can say why: the bytes go to the dead-letter queue
        # as they are, and the reason to the log.
        with _broker_errors("dead_letter"):
            for queue, tag, message, reason in broken:
                dlq = dead_letter_queue(queue)
                logger.error(
                    "Message %s on %r is not a readable envelope, moved to %r: %s",
                    tag,
                    queue,
                    dlq,
                    reason,
                )
                DEAD_LETTER(
                    self._redis,
                    [
                        self.keys.unacked,
                        self.keys.unacked_index,
                        self.keys.deliveries,
                        self.keys.list_for(dlq, 0),
                    ],
                    [tag, "", message],
                )

    # -- restoring --------------------------------------------------------------------------

    def _restore_allowed(self) -> bool:
        return time.monotonic() >= self._restore_after

    def _restore_expired(self) -> None:
        """Give back deliveries past their timeout; at most once per interval per instance,
        unless a round stopped at its limit with more waiting."""
        interval = min(1.0, self.visibility_timeout / 4)
        self._restore_after = time.monotonic() + interval
        opts = self.options
        # A bound per fetch, so a crashed worker's thousands of deliveries come back over
        # several fetches instead of holding this one for seconds.
        limit = opts.unacked_restore_limit or _RESTORE_PER_FETCH
        with _broker_errors("restore"):
            restored = restore_expired(
                self._redis,
                self.keys,
                visibility_timeout=self.visibility_timeout,
                mutex_expire=opts.unacked_mutex_expire,
                limit=limit,
                deadletter_queue=opts.deadletter_queue,
            )
        if restored == limit:
            self._restore_after = 0.0  # more may be waiting: carry on at the next fetch

    def _give_back(self, handles: Sequence[RedisHandle], *, head: bool) -> int:
        plan = GiveBack(self.keys)
        for handle in handles:
            try:
                message, priority = mark_redelivered(handle.message)
            except ValueError:  # not JSON: it was dead-lettered at fetch, never handed out
                message, priority = handle.message, 0
            plan.push(handle.tag, message, priority, [handle.queue], head=head)
        with _broker_errors("give back"):
            return plan.run(self._redis)

    # -- settling ---------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        if not handles:
            return
        self._settle(handles, "ack")
        self._unacked.settled(handles)

    def _confirm_published(self, action: str) -> None:
        """Wait for Redis's replies to what this transport published before a message leaves
        its queue. A worker publishes a copy (a retry, a message sent back until its eta) and
        then settles the original: the settle must not overtake a publish Redis refuses, or
        the task would be lost. TransportError, and nothing settled, when one was refused."""
        try:
            self.flush()
        except TransportError as exc:
            raise TransportError(
                f"Redis {action} not sent: an earlier publish failed: {exc}"
            ) from exc

    def _settle(self, handles: Sequence[RedisHandle], action: str) -> None:
        self._confirm_published(action)
        args: list[str] = []
        for handle in handles:
            args += (handle.tag, handle.counted)
        with _broker_errors(action):
            ACK.run_direct(
                self._direct,
                self._redis,
                [self.keys.unacked, self.keys.unacked_index, self.keys.deliveries],
                args,
            )

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        handles = self._unacked.handles([delivery])
        if requeue:
            self._give_back(handles, head=False)
        else:
            self._settle(handles, "reject")
        self._unacked.settled(handles)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        handles = self._unacked.handles([delivery])
        handle = handles[0]
        envelope = dead_lettered(delivery.envelope, reason)
        self._confirm_published("dead_letter")
        dlq = self.keys.list_for(
            dead_letter_queue(delivery.queue), message_priority(envelope.properties)
        )
        with _broker_errors("dead_letter"):
            moved = DEAD_LETTER(
                self._redis,
                [self.keys.unacked, self.keys.unacked_index, self.keys.deliveries, dlq],
                [handle.tag, handle.counted, envelope.encode()],
            )
        if not moved:
            logger.info(
                "Not dead-lettering %s from %r: it was given back or redelivered meanwhile",
                delivery.tag,
                delivery.queue,
            )
        self._unacked.settled(handles)

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Keep the deliveries invisible ``seconds`` from now at least; never shortens.

        The index holds delivery times and restorers compare them with *their* visibility
        timeout, so the new "delivery time" is ``now + seconds - visibility_timeout``, raised
        only (ZADD XX GT), and only for deliveries still recorded.
        """
        score = time.time() + check_seconds(seconds) - self.visibility_timeout
        handles = self._unacked.handles(deliveries)
        if not handles:
            return
        with _broker_errors("extend"):
            self._redis.zadd(
                self.keys.unacked_index, {h.tag: score for h in handles}, xx=True, gt=True
            )

    # -- direct exchanges -------------------------------------------------------------------

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        table = self.keys.binding(check_queue(exchange, "an exchange"))
        suffix = self.keys.step_suffix(message_priority(envelope.properties))
        with _broker_errors("send_direct"):
            sent = SEND_DIRECT(
                self._redis,
                [table],
                [self.keys.sep, routing_key, self.keys.prefix, suffix, envelope.encode()],
            )
        return int(sent) > 0

    # -- fanout -----------------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        channel = self.keys.publish_channel(
            check_queue(exchange, "an exchange"), envelope.routing_key
        )
        with _broker_errors("broadcast"):
            self._redis.publish(channel, envelope.encode())

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        patterns = self.keys.subscribe_patterns(check_queue(exchange, "an exchange"))
        with self._lock:
            if self._fanout is None:
                self._fanout = FanoutListener(self._client)
            fanout = self._fanout
        return fanout.subscribe(patterns, callback)

    def __repr__(self) -> str:
        from taskq.urls import mask_url

        return f"<RedisTransport {mask_url(self.url)}>"


_instances: weakref.WeakSet[RedisTransport] = weakref.WeakSet()


def _reset_in_child() -> None:
    for transport in list(_instances):
        transport._after_fork_in_child()  # pyright: ignore[reportPrivateUsage]


os.register_at_fork(after_in_child=_reset_in_child)
