"""Broadcast over Consul's KV store, which has no pub/sub of its own.

Each subscribing transport has an inbox (``_taskq/inbox/<subscriber>/``) and, per exchange it
listens to, a registration key ``_taskq/fanout/<exchange>/<subscriber>`` locked by a session
whose behaviour is *delete*: when the subscriber dies and its session expires, Consul deletes
the registration, so broadcasters stop writing to it. ``broadcast`` lists the registrations
and writes one copy into each inbox; a listener thread per subscribing transport waits on its
inbox with a blocking query, hands each message to the exchange's callbacks and deletes it.

At most once, as the contract asks: a subscriber registered after a broadcast never sees it, and
messages written to an inbox whose owner died are never read (they stay until an operator
deletes ``_taskq/inbox/``: Consul cannot expire keys by itself).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

from taskq.contracts import TransportError
from taskq_consul.client import ConsulClient
from taskq_consul.layout import KeyLayout
from taskq_consul.session import SessionKeeper
from taskq_protocol import Envelope, ProtocolError

__all__ = ["Fanout"]

logger = logging.getLogger("taskq_consul.fanout")

#: How long the listener's blocking query waits before checking whether it should stop.
_LISTEN_WAIT = 1.0


class Fanout:
    def __init__(self, client: ConsulClient, layout: KeyLayout, session_ttl: int) -> None:
        self._client = client
        self._layout = layout
        self._session = SessionKeeper(client, session_ttl, behavior="delete")
        self._subscriber = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._callbacks: dict[str, list[Callable[[Envelope], None]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def broadcast(self, exchange: str, envelope: Envelope) -> None:
        _, registered = self._client.keys(self._layout.fanout_prefix(exchange))
        message = envelope.encode()
        for key in registered:
            subscriber = self._layout.last_name(key)
            self._client.put(self._layout.inbox(subscriber, exchange), message)

    def subscribe(self, exchange: str, callback: Callable[[Envelope], None]) -> Callable[[], None]:
        with self._lock:
            if not self._callbacks.get(exchange):
                self._register(exchange)
            self._callbacks.setdefault(exchange, []).append(callback)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._listen, name="taskq-consul-fanout", daemon=True
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._callbacks.get(exchange, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._callbacks.pop(exchange, None)
                    key = self._layout.fanout_prefix(exchange) + self._subscriber
                    self._client.delete(key)

        return unsubscribe

    def _register(self, exchange: str) -> None:
        key = self._layout.fanout_prefix(exchange) + self._subscriber
        session = self._session.current()
        if not self._client.put(key, None, acquire=session):
            self._session.lost(session)
            raise TransportError(f"could not register a subscriber for {exchange!r}")

    def _listen(self) -> None:
        prefix = self._layout.inbox_prefix(self._subscriber)
        index: int | None = None
        while not self._stop.is_set():
            try:
                index, entries = self._client.watch_entries(
                    prefix, index=index, wait=_LISTEN_WAIT if index else None
                )
            except TransportError as exc:
                logger.warning("broadcast listener: %s", exc)
                self._stop.wait(_LISTEN_WAIT)
                continue
            for entry in sorted(entries, key=lambda e: e.key):
                self._client.delete(entry.key)
                self._dispatch(self._layout.inbox_exchange(entry.key), entry.value)

    def _dispatch(self, exchange: str, message: bytes) -> None:
        with self._lock:
            callbacks = list(self._callbacks.get(exchange, ()))
        if not callbacks:
            return
        try:
            envelope = Envelope.decode(message)
        except ProtocolError as exc:
            logger.error("dropping an undecodable broadcast on %s: %s", exchange, exc)
            return
        for callback in callbacks:
            try:
                callback(envelope)
            except Exception:
                logger.exception("a broadcast callback for %s failed", exchange)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=_LISTEN_WAIT * 5)
        with self._lock:
            had = bool(self._callbacks)
            self._callbacks.clear()
        self._session.close()  # deletes the registrations (behaviour: delete)
        if had:
            try:
                self._client.delete(self._layout.inbox_prefix(self._subscriber), recurse=True)
            except TransportError as exc:
                logger.warning("could not clear the broadcast inbox: %s", exc)
