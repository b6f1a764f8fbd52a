"""Subscribers: a thread per subscription that long-polls the broker's fanout log.

Pyro calls go one way (client to broker), so a subscriber asks ``taskq_fanout_read`` for
broadcasts newer than the last it saw, waiting on the broker up to a second at a time. It
starts after the newest broadcast at the moment it subscribes (no replay); at most once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from taskq.contracts import TransportError
from taskq_protocol import Envelope, ProtocolError
from taskq_pyro.proxies import Proxies, broker_errors

__all__ = ["Subscription"]

logger = logging.getLogger("taskq_pyro.fanout")

_POLL = 1.0


class Subscription:
    def __init__(
        self, proxies: Proxies, exchange: str, callback: Callable[[Envelope], None]
    ) -> None:
        self._proxies = proxies
        self._exchange = exchange
        self._callback = callback
        self._stopped = threading.Event()
        with broker_errors("subscribe"):
            self._after: int = int(proxies.get().taskq_fanout_position(exchange))
        self._thread = threading.Thread(
            target=self._run, name=f"taskq-pyro-fanout-{exchange}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with broker_errors("fanout read"):
                    fresh: Any = self._proxies.get().taskq_fanout_read(
                        self._exchange, self._after, _POLL
                    )
            except TransportError as exc:
                if self._stopped.wait(_POLL):
                    return
                logger.warning("broadcasts of %s: %s; retrying", self._exchange, exc)
                continue
            for seq, message in fresh:
                self._after = max(self._after, int(seq))
                if self._stopped.is_set():
                    return
                self._deliver(message)

    def _deliver(self, message: Any) -> None:
        try:
            envelope = Envelope.decode(json.dumps(message))
        except (ProtocolError, TypeError, ValueError):
            logger.warning("dropped an undecodable broadcast on %s", self._exchange)
            return
        try:
            self._callback(envelope)
        except Exception:
            logger.exception("a broadcast subscriber of %s raised", self._exchange)
