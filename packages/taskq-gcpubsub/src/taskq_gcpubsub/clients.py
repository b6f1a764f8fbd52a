"""The google-cloud-pubsub clients, built once per transport.

Their signatures are partly untyped (the ``retry``/``timeout`` defaults, the publish future),
so taskq holds them as :data:`Publisher` and :data:`Subscriber` (``Any``): strict pyright then
checks taskq's code rather than failing on the library's. ``PUBSUB_EMULATOR_HOST`` is read by
the clients themselves: set, they talk plain gRPC to that emulator without credentials.
"""

from __future__ import annotations

from typing import Any

from google.cloud.pubsub_v1 import (  # pyright: ignore[reportMissingTypeStubs]
    PublisherClient,
    SubscriberClient,
)

__all__ = ["Publisher", "Subscriber", "make_clients"]

Publisher = Any
Subscriber = Any


def make_clients() -> tuple[Publisher, Subscriber]:
    return PublisherClient(), SubscriberClient()
