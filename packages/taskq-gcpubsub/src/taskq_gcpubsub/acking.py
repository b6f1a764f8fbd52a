"""Pull, acknowledge and change ack deadlines in batches, the way Pub/Sub bounds requests."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from google.pubsub_v1.types import ReceivedMessage

from taskq_gcpubsub.clients import Subscriber
from taskq_gcpubsub.errors import NotFound, translated
from taskq_gcpubsub.options import MAX_ACK_DEADLINE

__all__ = ["pull_now", "acknowledge", "set_deadline"]

# The client warns on every pull with return_immediately; taskq needs it (see pull_now) and
# polls instead of waiting, so the warning says nothing a user can act on.
warnings.filterwarnings(
    "ignore",
    message="The return_immediately flag is deprecated",
    category=DeprecationWarning,
    module="google.pubsub_v1",
)

#: Pub/Sub returns at most 1000 messages per pull.
MAX_PULL = 1000


def pull_now(subscriber: Subscriber, subscription: str, limit: int) -> list[ReceivedMessage]:
    """Up to ``limit`` messages ready now, without waiting (``[]`` for a missing subscription).

    ``return_immediately`` keeps a pull from being cut off by a client timeout after the
    server leased messages: such messages would stay invisible for a whole ack deadline.
    """
    with translated("pull"):
        try:
            response = subscriber.pull(
                request={
                    "subscription": subscription,
                    "max_messages": max(1, min(limit, MAX_PULL)),
                    "return_immediately": True,
                },
                timeout=30,
            )
        except NotFound:
            return []
    return list(response.received_messages)


def acknowledge(
    subscriber: Subscriber, subscription: str, ack_ids: Sequence[str], batch: int
) -> None:
    """Acknowledge ``ack_ids`` (a missing subscription has nothing left to acknowledge)."""
    for start in range(0, len(ack_ids), batch):
        chunk = list(ack_ids[start : start + batch])
        with translated("acknowledge"):
            try:
                subscriber.acknowledge(request={"subscription": subscription, "ack_ids": chunk})
            except NotFound:
                return


def set_deadline(
    subscriber: Subscriber,
    subscription: str,
    ack_ids: Sequence[str],
    seconds: int,
    batch: int,
) -> None:
    """Make ``ack_ids`` visible again ``seconds`` from now (0: at once; at most 600)."""
    seconds = max(0, min(MAX_ACK_DEADLINE, seconds))
    for start in range(0, len(ack_ids), batch):
        chunk = list(ack_ids[start : start + batch])
        with translated("modify_ack_deadline"):
            try:
                subscriber.modify_ack_deadline(
                    request={
                        "subscription": subscription,
                        "ack_ids": chunk,
                        "ack_deadline_seconds": seconds,
                    }
                )
            except NotFound:
                return
