# pyright: strict
"""Running an app's queued messages in the test's own thread, as a worker would.

``run_queued(app)`` fetches what the app's broker holds, decodes each message as the worker
does and runs it through :func:`taskq.execution.execute` (store, callbacks, chain steps, chord
bodies), acknowledging it, until nothing is left. Messages the runs send are run too, so a
whole workflow completes inside the call. Delayed messages (an ``eta`` in the future) wait in
the broker and are not run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from taskq import TaskQ
from taskq.contracts import Delivery
from taskq.execution import Execution, execute
from taskq_protocol import TaskMessage
from taskq_serializers import decompress, registry

__all__ = ["run_queued", "decode_delivery"]

_ACCEPT = ("json", "msgpack", "pickle", "yaml")


def decode_delivery(delivery: Delivery) -> TaskMessage:
    """The task message in a delivery, decoded as a worker decodes it."""
    envelope = delivery.envelope
    body = envelope.body
    if "compression" in envelope.headers:
        body = decompress(body, envelope.headers["compression"])
    accept = registry.accept_content_types(list(_ACCEPT))
    payload = registry.loads(body, envelope.content_type, envelope.content_encoding, accept=accept)
    return TaskMessage.decode(envelope.headers, envelope.properties, payload)


def run_queued(
    app: TaskQ,
    queues: Sequence[str] = ("celery",),
    *,
    limit: int = 100_000,
    before: Callable[[TaskMessage], None] | None = None,
) -> list[Execution]:
    """Run queued messages until the queues are empty; return what each run did, in order.

    ``before(message)`` is called before each run (a test may raise in it to simulate a worker
    that dies before running a message: the message is then left unacknowledged). At most
    ``limit`` messages run, so a workflow that never ends fails the test instead of hanging.
    """
    transport = app.transport
    done: list[Execution] = []
    while True:
        deliveries = transport.fetch(list(queues), 100, 0.0)
        if not deliveries:
            return done
        for delivery in deliveries:
            if len(done) >= limit:
                raise AssertionError(f"more than {limit} messages ran: a workflow that never ends?")
            message = decode_delivery(delivery)
            if before is not None:
                before(message)
            done.append(
                execute(
                    app,
                    message,
                    hostname="inprocess@test",
                    delivery_info={
                        "routing_key": delivery.envelope.routing_key,
                        "queue": delivery.queue,
                    },
                )
            )
            transport.ack([delivery])
