"""The Consul session a transport holds its deliveries' locks with, kept alive by a heartbeat.

A session with a TTL dies unless renewed: that is how Consul learns that a consumer is gone,
and why its deliveries come back without anyone waiting for their visibility timeout. Consul
accepts TTLs from 10 s to 24 h and may take up to twice the TTL to act on an expired one. The
heartbeat renews every third of the TTL; if Consul has already forgotten the session (a pause
longer than the TTL), the next caller gets a new one, and the old deliveries, now unlocked, are
given back by whichever consumer looks first.
"""

from __future__ import annotations

import logging
import socket
import threading

from taskq.contracts import TransportError
from taskq_consul.client import ConsulClient

__all__ = ["SessionKeeper"]

logger = logging.getLogger("taskq_consul.session")


class SessionKeeper:
    def __init__(self, client: ConsulClient, ttl: int, *, behavior: str = "release") -> None:
        self._client = client
        self._ttl = ttl
        self._behavior = behavior
        self._lock = threading.Lock()
        self._id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> str:
        """The live session's id, created (and its heartbeat started) on first use."""
        with self._lock:
            if self._id is None:
                name = f"taskq@{socket.gethostname()}"
                self._id = self._client.create_session(name, self._ttl, behavior=self._behavior)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._beat, name="taskq-consul-session", daemon=True
                    )
                    self._thread.start()
            return self._id

    def known(self) -> str | None:
        """The session's id if one exists, without creating one."""
        return self._id

    def lost(self, session_id: str) -> None:
        """Forget a session Consul no longer has; the next :meth:`current` makes a new one."""
        with self._lock:
            if self._id == session_id:
                self._id = None

    def _beat(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            session_id = self._id
            if session_id is None:
                continue
            try:
                if not self._client.renew_session(session_id):
                    logger.warning("Consul session %s expired; a new one will be made", session_id)
                    self.lost(session_id)
            except TransportError as exc:
                logger.warning("renewing Consul session %s failed: %s", session_id, exc)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            session_id, self._id = self._id, None
        if session_id is not None:
            try:
                self._client.destroy_session(session_id)
            except TransportError as exc:
                logger.warning("destroying Consul session %s failed: %s", session_id, exc)
