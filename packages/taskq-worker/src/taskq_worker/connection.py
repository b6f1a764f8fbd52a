"""Reaching the broker: at start with retries and backoff, and again after losing it.

A broker that is still starting (a container started beside the worker) is waited for, per
``broker_connection_retry_on_startup`` and ``broker_connection_max_retries``; one that never
answers ends the start with an error naming the URL (password masked), not a traceback.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from taskq import plugins
from taskq.contracts import Transport, TransportError
from taskq_worker.banner import mask_url

if TYPE_CHECKING:
    from taskq.app import TaskQ

__all__ = ["BrokerUnavailable", "Backoff", "open_transport"]

logger = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker could not be reached at start; the message names its URL."""


class Backoff:
    """Waits that double from ``first`` up to ``maximum`` seconds; reset after a success."""

    __slots__ = ("_next", "first", "maximum")

    def __init__(self, first: float = 0.5, maximum: float = 30.0) -> None:
        self.first = first
        self.maximum = maximum
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.first


def open_transport(app: TaskQ, stopping: threading.Event) -> Transport:
    """A connected transport of its own for this worker (not ``app.transport``, which task
    code publishes through), so closing it at shutdown returns exactly the worker's deliveries.

    Raises BrokerUnavailable when it cannot connect within the retry policy, or as soon as
    ``stopping`` is set; ImproperlyConfigured and PluginNotFound for a bad URL or options.
    """
    url = app.broker_url
    factory = plugins.TRANSPORTS.load(plugins.scheme_of(url))
    transport: Transport = factory(url, app.transport_options())
    retry = bool(app.conf.broker_connection_retry_on_startup)
    max_retries: int | None = app.conf.broker_connection_max_retries
    backoff = Backoff()
    attempt = 0
    while True:
        try:
            transport.connect()
            return transport
        except TransportError as exc:
            attempt += 1
            out_of_retries = max_retries is not None and attempt > max_retries
            if not retry or out_of_retries or stopping.is_set():
                raise BrokerUnavailable(
                    f"cannot connect to the broker at {mask_url(url)}: {exc}"
                ) from exc
            delay = backoff.next()
            logger.error(
                "Cannot connect to %s: %s. Trying again in %.2f seconds... (%d/%s)",
                mask_url(url),
                exc,
                delay,
                attempt,
                "unlimited" if max_retries is None else max_retries,
            )
            if stopping.wait(delay):
                raise BrokerUnavailable(
                    f"stopped while connecting to the broker at {mask_url(url)}"
                ) from exc
