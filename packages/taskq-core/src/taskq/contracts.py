"""The contracts every transport, result backend and pool implements.

They are small on purpose (Huey's lesson: a new backend should be a few hundred lines) and
typed, so a type checker tells an integration author what is missing. Each has a conformance
suite in ``taskq-testing`` that an implementation runs against its real server in one line.

Transports move *wire messages*: the serialized body plus the headers and properties Celery's
protocol puts beside it (:class:`taskq_protocol.Envelope`). How a transport stores them is its
business. Redis and SQLite keep kombu's JSON envelope, AMQP uses native properties. What comes
out of :meth:`Transport.fetch` must be what went into :meth:`Transport.publish`, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from taskq_protocol import Envelope, ResultMeta

__all__ = [
    "dead_letter_queue",
    "DEAD_LETTER_REASON_HEADER",
    "Delivery",
    "QueueSpec",
    "Transport",
    "ResultBackend",
    "ChordPart",
    "CHORD_CLAIM_LEASE",
    "Pool",
    "PoolJob",
    "JobOutcome",
    "OUTCOMES",
    "TransportError",
    "BackendError",
    "TransportFactory",
    "BackendFactory",
    "BackendOptions",
    "PoolFactory",
]


#: The header a dead-lettered message carries, saying why it was dead-lettered.
DEAD_LETTER_REASON_HEADER = "x-taskq-dead-letter-reason"


def dead_letter_queue(queue: str) -> str:
    """Where messages from ``queue`` go when they cannot be processed: ``<queue>.dlq``.

    Transports with native dead-lettering (RabbitMQ's DLX, SQS redrive) route there too, so an
    operator finds every refused message of ``celery`` in ``celery.dlq``, whatever the broker.
    """
    return f"{queue}.dlq"


class TransportError(Exception):
    """The broker could not be reached or refused an operation; the caller may retry."""


class BackendError(Exception):
    """The result store could not be reached or refused an operation; the caller may retry."""


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue as ``task_queues`` declares it (Celery's ``kombu.Queue`` in plain data)."""

    name: str
    exchange: str = ""
    exchange_type: str = "direct"
    routing_key: str = ""
    #: ``x-max-priority`` and friends; transports ignore what they cannot honour.
    arguments: Mapping[str, Any] = field(default_factory=dict[str, Any])
    max_priority: int | None = None


@dataclass(slots=True)
class Delivery:
    """One message handed to a consumer, until it is acked, rejected or dead-lettered.

    ``tag`` identifies the delivery to the transport; ``deliveries`` counts how often this
    message has been handed out (1 the first time), so the worker can dead-letter a message
    that keeps killing workers instead of looping forever.
    """

    queue: str
    envelope: Envelope
    tag: str
    deliveries: int = 1
    #: Transport-private state (a row id, a receipt handle, an AMQP channel).
    handle: Any = None

    @property
    def redelivered(self) -> bool:
        return self.deliveries > 1 or self.envelope.redelivered


@runtime_checkable
class Transport(Protocol):
    """A message broker, as the client and the worker use it.

    Every method may raise :class:`TransportError` when the broker is unreachable. Blocking
    calls take a ``timeout`` and return early (empty) when it passes, so a worker can shut
    down promptly.

    Optional: a transport whose ``publish`` returns before the broker has answered
    (taskq-redis, taskq-amqp with its confirms pipelined) also has ``flush()``, which waits
    for every answer and raises :class:`TransportError` if the broker refused a publish. The
    worker calls it after each task, before it settles the task's message, so that what the
    task published (the next step of a chain, a retry) is never lost behind an
    acknowledgement; ``close()`` must flush too. Not part of this protocol, so that a
    transport that waits in ``publish`` needs nothing more.
    """

    #: URL schemes this transport serves (``("redis", "rediss")``). Declare it with its type
    #: (``schemes: tuple[str, ...] = ("redis",)``), or a type checker will not accept the
    #: class as a Transport.
    schemes: tuple[str, ...]

    def connect(self) -> None:
        """Open connections; called once before first use. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections. Unacked deliveries return to their queues."""
        ...

    def declare_queue(self, spec: QueueSpec) -> None:
        """Make sure a queue exists (a no-op where queues are implicit).

        With ``spec.exchange`` set, the queue is also bound to that exchange with
        ``spec.routing_key``, so :meth:`send_direct` finds it.
        """
        ...

    def delete_queue(self, name: str) -> None:
        """Remove a queue, its waiting messages and its bindings (a no-op when absent)."""
        ...

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        """Put one message on ``queue``; with ``eta`` (a Unix time) it becomes visible then.

        Delayed messages wait in the broker, never in a worker's memory.
        """
        ...

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        """Publish several ``(queue, envelope, eta)`` in as few round trips as the broker allows."""
        ...

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Take up to ``limit`` ready messages, waiting up to ``timeout`` seconds for the first.

        Earlier queues in ``queues`` are served first; within a queue, by priority (which end
        is highest is the broker's: the built-in transports serve the higher number first, as
        AMQP does; Redis serves 0 first), then FIFO. A fetched message is invisible to other
        consumers until acked, rejected, or its visibility timeout passes (then it is
        delivered again, ``deliveries`` + 1). Bad arguments raise ValueError.
        """
        ...

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Remove finished messages for good."""
        ...

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        """Give a message back (``requeue``; its ``deliveries`` count is kept) or drop it.

        Settling a delivery that has since gone to another consumer (its visibility timeout
        passed) does nothing, here and in ``ack``, ``extend`` and ``dead_letter``.
        """
        ...

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a message that cannot be processed to the dead-letter queue, with the reason."""
        ...

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        """Keep long-running deliveries invisible at least ``seconds`` from now (never shortens)."""
        ...

    def purge(self, queue: str) -> int:
        """Delete every waiting message (ready or delayed, not held by a consumer); how many."""
        ...

    def queue_length(self, queue: str) -> int:
        """Messages waiting (ready or delayed, not held by a consumer) on ``queue``."""
        ...

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        """Deliver through the direct ``exchange`` to every queue bound to it with
        ``routing_key`` (bindings come from declare_queue(QueueSpec(name, exchange=...,
        routing_key=...))). False when no queue is bound: the message is dropped, as AMQP drops
        an unroutable message published without ``mandatory``.

        Remote-control replies travel this way, as Celery sends them: to the request's
        ``reply_to`` exchange, with the client's id as routing key. A reply queue is declared
        with ``arguments={"x-expires": <ms>}`` where the broker honours expiry; the client
        reads it with :meth:`fetch` and deletes it when done.
        """
        ...

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        """Send to every subscriber of a fanout ``exchange`` (remote control, events)."""
        ...

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        """Receive broadcasts of ``exchange`` from now on (at most once, no replay of earlier
        ones; live when this returns); returns a function that unsubscribes."""
        ...


class TransportFactory(Protocol):
    """What the ``taskq.transports`` entry points name (usually the transport class).

    ``url`` is the broker URL as configured (``sqlite:///taskq.db``); ``options`` is
    ``broker_transport_options``. Connecting happens in :meth:`Transport.connect`, not here,
    so building a transport never touches the network.
    """

    def __call__(self, url: str, options: Mapping[str, Any]) -> Transport: ...


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """What a result backend needs from the app's configuration."""

    #: ``result_backend_transport_options``.
    transport_options: Mapping[str, Any] = field(default_factory=dict[str, Any])
    #: ``result_serializer`` and ``result_accept_content`` (content types, resolved).
    serializer: str = "json"
    accept: frozenset[str] = frozenset({"application/json"})
    #: ``result_expires`` in seconds; ``None`` keeps results forever.
    expires: float | None = 86400.0
    #: ``result_extended``: also store name, args, kwargs, worker, retries, queue.
    extended: bool = False


class BackendFactory(Protocol):
    """What the ``taskq.backends`` entry points name (usually the backend class)."""

    def __call__(self, url: str, options: BackendOptions) -> ResultBackend: ...


#: Seconds a chord stays claimed by the part that completed it before another report may
#: complete it again (the claimant publishes the body within it; Celery's claim is 10 s
#: while it joins, then extended for the publish).
CHORD_CLAIM_LEASE = 30.0


@dataclass(frozen=True, slots=True)
class ChordPart:
    """One finished member of a chord header, reported to the backend."""

    group_id: str
    task_id: str
    group_index: int | None
    meta: ResultMeta


@runtime_checkable
class ResultBackend(Protocol):
    """Where task states and results live.

    A ``SUCCESS`` is final: :meth:`store` never overwrites it (not even with another
    SUCCESS), so a task that ran twice after a worker died cannot replace a good result with a
    late failure.
    """

    #: URL schemes this backend serves; declare it with its type, as for Transport.
    schemes: tuple[str, ...]

    def store(self, meta: ResultMeta, *, expires: float | None = None) -> None:
        """Write one task's state; ``expires`` in seconds (``None``: the backend default)."""
        ...

    def store_many(self, metas: Iterable[ResultMeta], *, expires: float | None = None) -> None:
        """Write several states in as few round trips as the store allows."""
        ...

    def get(self, task_id: str) -> ResultMeta | None:
        """The stored state, or ``None`` when the store has none (reads as PENDING)."""
        ...

    def wait(self, task_ids: Sequence[str], timeout: float | None) -> dict[str, ResultMeta]:
        """Block until every id is ready or ``timeout`` passes; returns the ready ones.

        Stores that can notify (Redis pub/sub, PostgreSQL LISTEN) push; others poll.
        """
        ...

    def forget(self, task_id: str) -> None:
        """Delete a task's state."""
        ...

    def save_group(self, group_id: str, result_tuple: list[Any]) -> None:
        """Store a GroupResult (``GroupResult.save()``) as Celery's result tuple."""
        ...

    def restore_group(self, group_id: str) -> list[Any] | None: ...

    def delete_group(self, group_id: str) -> None: ...

    def set_chord_size(self, group_id: str, size: int) -> None:
        """Record how many header tasks a chord waits for, before the last is sent.

        Setting the size of a chord that is done (or claimed) starts a new run of it under
        the same group id: a frozen chord applied again.
        """
        ...

    def chord_part_done(
        self, part: ChordPart, *, lease: float = CHORD_CLAIM_LEASE
    ) -> list[ResultMeta] | None:
        """Count one finished header task, atomically and at most once per task id (a part
        reported twice keeps its first result).

        When the count is complete, the chord is *claimed* for ``lease`` seconds by the
        reporting task id and the metas of every part, ordered by ``group_index``, are
        returned to that reporter alone; everyone else gets ``None``. The claimant sends the
        body, then calls :meth:`chord_body_sent`, which marks the chord done. Until then the
        parts are kept, and a later report that finds the count complete gets them again if
        the claim has expired, or if it comes from the claiming task id itself (its message
        was delivered again: the worker that claimed died before it was done). Once the chord
        is done no report gets them again. So a body is sent at least once, and twice only
        when a claimant is slower than its lease or dies after sending and before
        ``chord_body_sent``; it is sent under the id it was frozen with, so that second send
        is the same task.

        Parts may arrive before ``set_chord_size``: the chord completes on the part that finds
        both the size and every part.
        """
        ...

    def chord_body_sent(self, group_id: str) -> None:
        """Mark a chord done once its body was published (or failed): its parts may be
        dropped and later reports of them are ignored. Unknown ids are ignored."""
        ...

    def close(self) -> None: ...


#: How a pool job ended. ``done``: the target returned (its value says what happened to the
#: task); ``lost``: the process running it died, the target itself raised, or the job never
#: started because the pool stopped; ``timeout``: the hard time limit killed it;
#: ``terminated``: ``revoke(terminate=True)`` killed it.
OUTCOMES = ("done", "lost", "timeout", "terminated")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a pool reports for one job, on the thread that owns the worker's bookkeeping."""

    task_id: str
    outcome: str
    #: For ``done``: what the target returned (small and picklable). Otherwise a description.
    value: Any = None


@dataclass(slots=True)
class PoolJob:
    """One task for a pool to run.

    ``target(*args)`` does the whole execution: it runs the task, stores its result and sends
    what follows it (callbacks, the next chain step). It must be picklable (a module-level
    function and plain arguments), because the prefork pool runs it in a child process, where
    storing the result in parallel is what makes prefork scale. It returns a small picklable
    value the worker uses to decide how to acknowledge the message.
    """

    task_id: str
    target: Callable[..., Any]
    args: tuple[Any, ...]
    soft_time_limit: float | None = None
    time_limit: float | None = None


class PoolFactory(Protocol):
    """What the ``taskq.pools`` entry points name: ``factory(concurrency, **options)``.

    Options are ``max_tasks_per_child`` and ``max_memory_per_child`` (KiB), which pools that
    cannot honour them ignore, saying so in their documentation.
    """

    def __call__(self, concurrency: int, **options: Any) -> Pool: ...


@runtime_checkable
class Pool(Protocol):
    """Runs tasks concurrently: solo (in the worker's thread), threads, or prefork processes.

    Soft time limits raise ``SoftTimeLimitExceeded`` inside the task; hard limits stop it
    (prefork kills and replaces the child). Outcomes are reported through the ``on_outcome``
    callback given to :meth:`start`, exactly once per job, from the pool's own threads or
    from the thread calling :meth:`terminate` or :meth:`stop`. ``free_slots`` drops as soon
    as :meth:`apply` returns; ``stop(wait=True)`` returns after every outcome was reported.
    """

    name: str

    def start(self, on_outcome: Callable[[JobOutcome], None]) -> None: ...

    def apply(self, job: PoolJob) -> None:
        """Start ``job``; returns at once, except in the solo pool, which runs it first."""
        ...

    def terminate(self, task_id: str, signum: int | None = None) -> bool:
        """Stop a running task (``revoke(terminate=True)``); False if it is not running here."""
        ...

    def grow(self, n: int = 1) -> None: ...

    def shrink(self, n: int = 1) -> None: ...

    @property
    def free_slots(self) -> int:
        """How many more jobs it can start now, so the worker fetches no more than that."""
        ...

    def stop(self, *, wait: bool = True) -> None:
        """Finish running jobs (``wait``) or kill them, then release processes and threads."""
        ...
