"""``sqs://``: the Amazon SQS transport, on the wire exactly as kombu's SQS transport.

Celery clients and workers share queues with taskq's: the queue names are kombu's
(:mod:`taskq_sqs.names`), the bodies kombu's (:mod:`taskq_sqs.wire`).

- **Fetch**: ReceiveMessage on each queue in the order given, up to 10 messages a call,
  asking for ``ApproximateReceiveCount`` (a delivery's ``deliveries``). One queue is long
  polled (``WaitTimeSeconds`` up to ``wait_time_seconds``, never past the caller's timeout);
  several are short polled, ``polling_interval`` apart, since one long poll would stall the
  others. Each receive passes this transport's ``visibility_timeout``, so it holds whatever
  visibility the queue was created with.
- **Settle**: DeleteMessageBatch for acks; ``reject(requeue=True)`` makes the message visible
  at once (ChangeMessageVisibility 0); ``reject(requeue=False)`` deletes it, as the
  contract says (kombu leaves it for the redrive policy; taskq workers dead-letter instead).
  A receipt that no longer holds the message is ignored.
- **Extend**: ChangeMessageVisibilityBatch, never shortening what a delivery already has
  (SQS caps it at 12 hours).
- **Delay**: DelaySeconds up to ``max_delay_seconds`` (SQS: 15 minutes), rounded up, plus a
  ``taskq-eta`` attribute. A message that surfaces before its eta (delays beyond 15
  minutes) is sent again with the rest of its delay and the early copy deleted: never run
  early, never held in memory. FIFO queues take no per-message delay: their early messages
  are hidden (ChangeMessageVisibility) until due, which counts as a receive in
  ``deliveries``.
- **Dead letters**: ``dead_letter`` sends the message, with the reason in its
  :data:`~taskq.contracts.DEAD_LETTER_REASON_HEADER` header and a ``taskq-dead-letter-reason``
  attribute, to the queue's RedrivePolicy target when it has one, else to
  ``<queue>.dlq``. SQS itself moves a message received ``maxReceiveCount`` times;
  ``max_receive_count`` makes ``declare_queue`` set that policy.
- **Direct exchanges**: bindings are kept in queue tags (:mod:`taskq_sqs.bindings`).
- **Fanout**: SQS has none, and kombu's SQS transport does not offer it without SNS: ``broadcast``
  drops the message and ``subscribe`` receives nothing (remote control is unavailable on SQS,
  as in Celery); each logs a warning once.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from taskq.contracts import Delivery, QueueSpec, TransportError, dead_letter_queue
from taskq.transports.checks import check_limit, check_queue, check_queues, check_seconds
from taskq.transports.dead_letter import dead_lettered
from taskq.transports.unacked import Unacked
from taskq_protocol import Envelope, ProtocolError
from taskq_sqs.bindings import Bindings
from taskq_sqs.clients import Clients
from taskq_sqs.errors import NO_QUEUE_CODES, STALE_RECEIPT_CODES, sqs_errors
from taskq_sqs.names import is_fifo
from taskq_sqs.options import SQS_MAX_VISIBILITY, SqsOptions
from taskq_sqs.queues import QueueDirectory
from taskq_sqs.sdk import ClientError, error_code, field_dict, field_list
from taskq_sqs.wire import ETA_ATTRIBUTE, REASON_ATTRIBUTE, decode_body, eta_of, send_entry

__all__ = ["SqsTransport", "SqsHandle"]

logger = logging.getLogger("taskq_sqs.transport")

#: SQS's batch limits: 10 entries, 1 MiB in all.
_BATCH = 10
_BATCH_BYTES = 1_000_000
_RECEIVE_COUNT = "ApproximateReceiveCount"


class SqsHandle:
    """What a :class:`~taskq.contracts.Delivery` of this transport points at."""

    __slots__ = ("queue", "receipt", "url", "visible_until")

    def __init__(self, queue: str, url: str, receipt: str, visible_until: float) -> None:
        self.queue = queue
        self.url = url
        self.receipt = receipt
        #: ``time.monotonic()`` until which SQS keeps it hidden, as far as this side knows.
        self.visible_until = visible_until


class SqsTransport:
    """A taskq transport on Amazon SQS that kombu's SQS transport reads and writes alike."""

    schemes: tuple[str, ...] = ("sqs",)

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.options = SqsOptions.read(url, options)
        self.visibility_timeout = float(self.options.visibility_timeout)
        self._base64 = bool(options.get("sqs_base64_encoding", True))
        self._clients = Clients(self.options)
        self._queues = QueueDirectory(self._clients, self.options)
        self._bindings = Bindings(self._queues)
        self._unacked = Unacked(SqsHandle, "SQS")
        self._instance = secrets.token_hex(8)
        self._tags = itertools.count(1)
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    def connect(self) -> None:
        """Build the client and check the endpoint answers (ListQueues, one page)."""
        with sqs_errors("connect"):
            self._clients.default().list_queues(
                QueueNamePrefix=self.options.queue_name_prefix or "", MaxResults=1
            )

    def close(self) -> None:
        """Make every unsettled delivery visible again at once."""
        handles = self._unacked.take_all()
        try:
            self._change_visibility(handles, lambda _: 0)
        except TransportError as exc:
            logger.warning(
                "Could not give back %d unacked message(s) on close (%s); they return "
                "after the visibility timeout",
                len(handles),
                exc,
            )

    # -- queues -----------------------------------------------------------------------------

    def declare_queue(self, spec: QueueSpec) -> None:
        name = check_queue(spec.name)
        with sqs_errors("declare_queue"):
            url = self._queues.url(name, create=True)
            assert url is not None
            if self.options.max_receive_count is not None:
                self._ensure_redrive(name, url, self.options.max_receive_count)
            if spec.exchange:
                self._bindings.bind(name, url, spec.exchange, spec.routing_key)

    def _ensure_redrive(self, queue: str, url: str, max_receive_count: int) -> None:
        client = self._queues.client(queue)
        if self._queues.redrive(client, url) is not None:
            return  # the operator's policy wins
        dlq_name = _redrive_dlq_name(self._queues.sqs_name(queue))
        dlq_url = self._queues.url_of_sqs_name(dlq_name, create=True)
        arn = self._queues.attributes(client, dlq_url or "", ["QueueArn"])["QueueArn"]
        policy = f'{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receive_count}"}}'
        client.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
        self._queues.forget_url(url)

    def delete_queue(self, name: str) -> None:
        name = check_queue(name)
        self._unacked.take_where(lambda handle: handle.queue == name)
        with sqs_errors("delete_queue"):
            url = self._queues.url(name, create=False)
            if url is None:
                return
            self._bindings.unbind_all(name, url)
            try:
                self._queues.client(name).delete_queue(QueueUrl=url)
            except ClientError as exc:
                if error_code(exc) not in NO_QUEUE_CODES:
                    raise
            finally:
                self._queues.forget(name)

    # -- publishing -------------------------------------------------------------------------

    def _entry(self, queue: str, envelope: Envelope, eta: float | None) -> dict[str, Any]:
        now = time.time()
        checked = cast(object, eta)
        if checked is not None and (
            isinstance(checked, bool)
            or not isinstance(checked, (int, float))
            or not math.isfinite(checked)
        ):
            raise ValueError(f"eta must be a Unix time (a finite number) or None, got {eta!r}")
        due = eta if eta is not None and eta > now else None
        delay = 0.0 if due is None else min(due - now, self.options.max_delay_seconds)
        fifo = is_fifo(self._queues.sqs_name(queue))
        return send_entry(envelope, fifo=fifo, delay=delay, eta=due, base64_wrap=self._base64)

    def publish(self, queue: str, envelope: Envelope, *, eta: float | None = None) -> None:
        queue = check_queue(queue)
        entry = self._entry(queue, envelope, eta)
        with sqs_errors("publish"):
            url = self._queues.url(queue, create=True)
            self._queues.client(queue).send_message(QueueUrl=url, **entry)

    def publish_many(self, items: Sequence[tuple[str, Envelope, float | None]]) -> None:
        by_queue: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for queue, envelope, eta in items:
            by_queue[check_queue(queue)].append(self._entry(queue, envelope, eta))
        with sqs_errors("publish_many"):
            for queue, entries in by_queue.items():
                url = self._queues.url(queue, create=True)
                client = self._queues.client(queue)
                for batch in _batches(entries):
                    numbered = [{"Id": str(i), **entry} for i, entry in enumerate(batch)]
                    answer: Any = client.send_message_batch(QueueUrl=url, Entries=numbered)
                    if field_list(answer, "Failed"):
                        raise TransportError(f"SQS refused messages: {answer['Failed']}")

    def send_direct(self, exchange: str, routing_key: str, envelope: Envelope) -> bool:
        exchange = check_queue(exchange, "an exchange")
        sent = False
        with sqs_errors("send_direct"):
            for queue in self._bindings.lookup(exchange, routing_key):
                url = self._queues.url(queue, create=False)
                if url is not None and self._send_if_exists(queue, url, envelope):
                    sent = True
                else:  # deleted by a process that never unbound it: clean up
                    self._bindings.unbind(queue, exchange, routing_key)
        return sent

    def _send_if_exists(self, queue: str, url: str, envelope: Envelope) -> bool:
        entry = self._entry(queue, envelope, None)
        try:
            self._queues.client(queue).send_message(QueueUrl=url, **entry)
        except ClientError as exc:
            if error_code(exc) not in NO_QUEUE_CODES:
                raise
            self._queues.forget(queue)
            return False
        return True

    # -- fetching ---------------------------------------------------------------------------

    def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        ordered = check_queues(queues)
        limit = check_limit(limit)
        checked = cast(object, timeout)
        if isinstance(checked, bool) or not isinstance(checked, (int, float)) or checked < 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        deadline = time.monotonic() + timeout
        with sqs_errors("fetch"):
            while True:
                found = [(q, u) for q in ordered if (u := self._queues.url(q, create=False))]
                remaining = deadline - time.monotonic()
                wait = 0
                if len(found) == 1 and remaining >= 1 and self.options.wait_time_seconds:
                    wait = min(int(remaining), self.options.wait_time_seconds)
                got: list[Delivery] = []
                for queue, url in found:
                    got.extend(self._receive(queue, url, limit - len(got), wait))
                    if len(got) >= limit:
                        break
                if got:
                    self._unacked.add(got)
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if wait == 0:
                    time.sleep(min(self.options.polling_interval or 0.05, remaining, 1.0))

    def _receive(self, queue: str, url: str, count: int, wait: int) -> list[Delivery]:
        client = self._queues.client(queue)
        visibility = self.options.visibility_timeout
        try:
            answer: Any = client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(count, _BATCH),
                WaitTimeSeconds=wait,
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=[_RECEIVE_COUNT],
                MessageAttributeNames=[ETA_ATTRIBUTE],
            )
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE_CODES:
                self._queues.forget(queue)
                return []
            raise
        received_at = time.monotonic()
        deliveries: list[Delivery] = []
        for message in field_list(answer, "Messages"):
            eta = eta_of(message)
            if eta is not None and eta > time.time():
                self._postpone(queue, url, message, eta)
                continue
            receipt = str(message["ReceiptHandle"])
            try:
                envelope = decode_body(str(message["Body"]))
            except ProtocolError as exc:
                self._quarantine(queue, url, message, f"undecodable SQS message: {exc}")
                continue
            count_text = str(field_dict(message, "Attributes").get(_RECEIVE_COUNT, "1"))
            deliveries.append(
                Delivery(
                    queue=queue,
                    envelope=envelope,
                    tag=f"{self._instance}.{next(self._tags)}",
                    deliveries=max(int(count_text), 1),
                    handle=SqsHandle(queue, url, receipt, received_at + visibility),
                )
            )
        return deliveries

    def _postpone(self, queue: str, url: str, message: dict[str, Any], eta: float) -> None:
        """Put back a message that surfaced before its eta, hidden for the rest of its delay."""
        client = self._queues.client(queue)
        rest = eta - time.time()
        if is_fifo(self._queues.sqs_name(queue)):
            # No per-message delay on FIFO queues: stay in flight until due (in SQS, not here).
            self._ignore_stale(
                client.change_message_visibility,
                QueueUrl=url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=min(math.ceil(rest), SQS_MAX_VISIBILITY),
            )
            return
        client.send_message(
            QueueUrl=url,
            MessageBody=message["Body"],
            DelaySeconds=min(math.ceil(rest), self.options.max_delay_seconds),
            MessageAttributes=message.get("MessageAttributes") or {},
        )
        self._ignore_stale(
            client.delete_message, QueueUrl=url, ReceiptHandle=message["ReceiptHandle"]
        )

    def _quarantine(self, queue: str, url: str, message: dict[str, Any], reason: str) -> None:
        """Move a message no Envelope can be read from to the dead-letter queue, as it is."""
        logger.error("Dead-lettering a message of %s: %s", queue, reason)
        target = dead_letter_queue(queue)
        target_url = self._queues.url(target, create=True)
        entry: dict[str, Any] = {
            "MessageBody": message["Body"],
            "MessageAttributes": {REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason}},
        }
        if is_fifo(self._queues.sqs_name(target)):
            entry["MessageGroupId"] = "default"
            entry["MessageDeduplicationId"] = secrets.token_hex(16)
        self._queues.client(target).send_message(QueueUrl=target_url, **entry)
        self._ignore_stale(
            self._queues.client(queue).delete_message,
            QueueUrl=url,
            ReceiptHandle=message["ReceiptHandle"],
        )

    # -- settling ---------------------------------------------------------------------------

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        handles = self._unacked.handles(deliveries)
        with sqs_errors("ack"):
            for (queue, url), group in _by_queue(handles).items():
                client = self._queues.client(queue)
                for batch in _chunks(group, _BATCH):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": h.receipt} for i, h in enumerate(batch)
                    ]
                    self._ignore_stale(client.delete_message_batch, QueueUrl=url, Entries=entries)
        self._unacked.settled(handles)

    def reject(self, delivery: Delivery, *, requeue: bool) -> None:
        [handle] = self._unacked.handles([delivery])
        with sqs_errors("reject"):
            client = self._queues.client(handle.queue)
            if requeue:
                self._ignore_stale(
                    client.change_message_visibility,
                    QueueUrl=handle.url,
                    ReceiptHandle=handle.receipt,
                    VisibilityTimeout=0,
                )
            else:
                self._ignore_stale(
                    client.delete_message, QueueUrl=handle.url, ReceiptHandle=handle.receipt
                )
        self._unacked.settled([handle])

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        [handle] = self._unacked.handles([delivery])
        moved = dead_lettered(delivery.envelope, reason)
        with sqs_errors("dead_letter"):
            client = self._queues.client(handle.queue)
            # Still ours? Another consumer may hold it since our visibility passed.
            if not self._ignore_stale(
                client.change_message_visibility,
                QueueUrl=handle.url,
                ReceiptHandle=handle.receipt,
                VisibilityTimeout=max(self.options.visibility_timeout, 30),
            ):
                self._unacked.settled([handle])
                return
            target_name, target_url = self._dead_letter_target(handle.queue, handle.url)
            entry = send_entry(
                moved,
                fifo=is_fifo(target_name),
                delay=0,
                eta=None,
                base64_wrap=self._base64,
                reason=reason,
                republished=True,
            )
            self._clients.for_queue(target_name).send_message(QueueUrl=target_url, **entry)
            self._ignore_stale(
                client.delete_message, QueueUrl=handle.url, ReceiptHandle=handle.receipt
            )
        self._unacked.settled([handle])

    def _dead_letter_target(self, queue: str, url: str) -> tuple[str, str]:
        """(SQS name, URL) of where ``queue``'s refused messages go."""
        redrive = self._queues.redrive(self._queues.client(queue), url)
        if redrive is not None:
            found = self._queues.url_of_sqs_name(redrive.target_name, create=False)
            if found is not None:
                return redrive.target_name, found
        target = dead_letter_queue(queue)
        target_url = self._queues.url(target, create=True)
        assert target_url is not None
        return self._queues.sqs_name(target), target_url

    def extend(self, deliveries: Sequence[Delivery], seconds: float) -> None:
        seconds = check_seconds(seconds)
        handles = self._unacked.handles(deliveries)
        now = time.monotonic()
        longer = [h for h in handles if h.visible_until < now + seconds]
        timeout = min(math.ceil(seconds), SQS_MAX_VISIBILITY)
        self._change_visibility(longer, lambda _: timeout)
        for handle in longer:
            handle.visible_until = now + timeout

    def _change_visibility(
        self, handles: Iterable[SqsHandle], timeout: Callable[[SqsHandle], int]
    ) -> None:
        with sqs_errors("change visibility"):
            for (queue, url), group in _by_queue(handles).items():
                client = self._queues.client(queue)
                for batch in _chunks(group, _BATCH):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": h.receipt, "VisibilityTimeout": timeout(h)}
                        for i, h in enumerate(batch)
                    ]
                    self._ignore_stale(
                        client.change_message_visibility_batch, QueueUrl=url, Entries=entries
                    )

    @staticmethod
    def _ignore_stale(call: Callable[..., Any], **kwargs: Any) -> bool:
        """Run ``call``; False when the receipt or queue is gone (nothing left to settle).

        Batch calls report per-entry failures instead of raising; those are stale receipts
        too (another consumer holds the message now), unless SQS says the fault is its own.
        """
        try:
            answer: Any = call(**kwargs)
        except ClientError as exc:
            if error_code(exc) in STALE_RECEIPT_CODES | NO_QUEUE_CODES:
                return False
            raise
        failed = field_list(answer, "Failed")
        server_faults = [f for f in failed if not f.get("SenderFault", True)]
        if server_faults:
            raise TransportError(f"SQS failed entries: {server_faults}")
        return not failed

    # -- counting ---------------------------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        queue = check_queue(queue)
        with sqs_errors("queue_length"):
            url = self._queues.url(queue, create=False)
            if url is None:
                return 0
            return self._waiting(queue, url)

    def _waiting(self, queue: str, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
        try:
            found = self._queues.attributes(self._queues.client(queue), url, names)
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE_CODES:
                self._queues.forget(queue)
                return 0
            raise
        return sum(int(found.get(name, "0")) for name in names)

    def purge(self, queue: str) -> int:
        """PurgeQueue, as kombu does (SQS also drops messages in flight, and allows one
        purge a minute: within that minute the ready messages are received and deleted)."""
        queue = check_queue(queue)
        with sqs_errors("purge"):
            url = self._queues.url(queue, create=False)
            if url is None:
                return 0
            count = self._waiting(queue, url)
            if count == 0:
                return 0
            client = self._queues.client(queue)
            try:
                client.purge_queue(QueueUrl=url)
            except ClientError as exc:
                if "PurgeQueueInProgress" not in error_code(exc):
                    raise
                return self._drain(client, url)
            return count

    def _drain(self, client: Any, url: str) -> int:
        deleted = 0
        while True:
            answer: Any = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=_BATCH, WaitTimeSeconds=0
            )
            messages = field_list(answer, "Messages")
            if not messages:
                return deleted
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            self._ignore_stale(client.delete_message_batch, QueueUrl=url, Entries=entries)
            deleted += len(messages)

    # -- fanout -----------------------------------------------------------------------------

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        check_queue(exchange, "an exchange")
        self._warn_once(
            "broadcast",
            "SQS has no fanout: broadcasts (remote control, events) are dropped, as with "
            "Celery on SQS",
        )

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        check_queue(exchange, "an exchange")
        self._warn_once(
            "subscribe",
            "SQS has no fanout: this worker receives no broadcasts (remote control is "
            "unavailable, as with Celery on SQS)",
        )
        return _nothing

    def _warn_once(self, key: str, message: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(message)


def _nothing() -> None:
    return None


def _redrive_dlq_name(sqs_name: str) -> str:
    """The SQS name of ``<queue>.dlq``; for a FIFO queue a FIFO DLQ, as SQS requires."""
    if is_fifo(sqs_name):
        return sqs_name[: -len(".fifo")] + "-dlq.fifo"
    return sqs_name + "-dlq"


def _by_queue(handles: Iterable[SqsHandle]) -> dict[tuple[str, str], list[SqsHandle]]:
    grouped: dict[tuple[str, str], list[SqsHandle]] = defaultdict(list)
    for handle in handles:
        grouped[handle.queue, handle.url].append(handle)
    return grouped


def _chunks(items: list[SqsHandle], size: int) -> Iterable[list[SqsHandle]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _batches(entries: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    """SendMessageBatch-sized runs: at most 10 entries and about 1 MB of bodies."""
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        length = len(entry["MessageBody"]) + 512
        if batch and (len(batch) == _BATCH or size + length > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += length
    if batch:
        yield batch
