"""The broker process: ``python -m taskq_pyro.broker --host H --port P --name kombu.broker``.

It serves one Pyro object, registered under ``--name`` in the Pyro name server at
``--host:--port`` (started with ``python -m Pyro4.naming -n H -p P``). The object exposes:

- **kombu's broker interface** (the methods of ``kombu.transport.pyro.KombuBroker``, same
  names and arguments): ``get_queue_names``, ``new_queue``, ``has_queue``, ``get``, ``put``,
  ``size``, ``delete``, ``purge``. kombu's Pyro transport works against it unchanged. ``get``
  on an empty queue raises an exception serialized as ``queue.Empty``, the name kombu's
  client registers (kombu's own broker raises ``_queue.Empty``, which its client cannot read).
- **taskq's additions**, all prefixed ``taskq_``: fetch with a visibility timeout and
  delivery counts (``taskq_fetch``), ``taskq_ack``, ``taskq_requeue``, ``taskq_dead_letter``,
  ``taskq_extend``, ``taskq_release`` (a closing consumer gives back what it holds), delayed
  publishing (``taskq_put`` with an ETA, ``taskq_put_many``), direct-exchange bindings
  (``taskq_bind``, ``taskq_send_direct``) and fanout (``taskq_broadcast``,
  ``taskq_fanout_position``, ``taskq_fanout_read``). ``taskq_api`` says which version of
  these the broker speaks.

Everything lives in this process's memory (:mod:`taskq_pyro.state`): stopping the broker
loses every message, as with kombu's.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import Pyro4 as _Pyro4  # pyright: ignore[reportMissingTypeStubs]

from taskq_pyro.state import BrokerState

__all__ = ["TaskqBroker", "API_VERSION", "main", "Empty"]

logger = logging.getLogger("taskq_pyro.broker")

#: The version of the ``taskq_*`` methods; the transport refuses a broker without them.
API_VERSION = 1
#: The longest a blocking call waits on the broker side; clients loop for longer waits.
MAX_WAIT = 10.0

Message = dict[str, Any]
#: Pyro4 ships no type information.
pyro: Any = _Pyro4


class Empty(Exception):
    """Raised by ``get`` on an empty queue; Pyro serializes it as ``queue.Empty``."""


Empty.__module__ = "queue"


def _wait(timeout: float) -> float:
    return max(0.0, min(float(timeout), MAX_WAIT))


@pyro.expose
@pyro.behavior(instance_mode="single")
class TaskqBroker:
    """The Pyro object. One instance serves every client."""

    def __init__(self, state: BrokerState | None = None) -> None:
        self.state = state or BrokerState()

    # -- kombu's interface ---------------------------------------------------------------

    def get_queue_names(self) -> list[str]:
        return self.state.queue_names()

    def new_queue(self, queue: str) -> None:
        self.state.new_queue(queue)

    def has_queue(self, queue: str) -> bool:
        return self.state.has_queue(queue)

    def get(self, queue: str) -> Message:
        message = self.state.get(queue)
        if message is None:
            raise Empty()
        return message

    def put(self, queue: str, message: Message) -> None:
        self.state.put(queue, message)

    def size(self, queue: str) -> int:
        return self.state.size(queue)

    def delete(self, queue: str) -> None:
        self.state.delete(queue)

    def purge(self, queue: str) -> int:
        return self.state.purge(queue)

    # -- taskq's additions ---------------------------------------------------------------

    def taskq_api(self) -> int:
        return API_VERSION

    def taskq_put(self, queue: str, message: Message, eta: float | None) -> None:
        self.state.put(queue, message, eta)

    def taskq_put_many(self, items: list[tuple[str, Message, float | None]]) -> None:
        self.state.put_many([(q, m, eta) for q, m, eta in items])

    def taskq_fetch(
        self, queues: list[str], limit: int, timeout: float, visibility: float, consumer: str
    ) -> list[tuple[str, str, Message, int]]:
        return self.state.fetch(list(queues), int(limit), _wait(timeout), visibility, consumer)

    def taskq_ack(self, tags: list[str]) -> None:
        self.state.ack(list(tags))

    def taskq_requeue(self, tag: str) -> None:
        self.state.requeue(tag)

    def taskq_dead_letter(self, tag: str, message: Message) -> bool:
        return self.state.dead_letter(tag, message)

    def taskq_extend(self, tags: list[str], seconds: float) -> None:
        self.state.extend(list(tags), float(seconds))

    def taskq_release(self, consumer: str) -> None:
        self.state.release(consumer)

    def taskq_bind(self, exchange: str, routing_key: str, queue: str) -> None:
        self.state.bind(exchange, routing_key, queue)

    def taskq_send_direct(self, exchange: str, routing_key: str, message: Message) -> bool:
        return self.state.send_direct(exchange, routing_key, message)

    def taskq_broadcast(self, exchange: str, message: Message) -> None:
        self.state.broadcast(exchange, message)

    def taskq_fanout_position(self, exchange: str) -> int:
        return self.state.fanout_position(exchange)

    def taskq_fanout_read(
        self, exchange: str, after: int, timeout: float
    ) -> list[tuple[int, Message]]:
        return self.state.fanout_read(exchange, int(after), _wait(timeout))


def serve(host: str, port: int, name: str, *, daemon_port: int = 0) -> None:
    """Register a broker under ``name`` in the name server at ``host:port`` and serve forever."""
    # One pool thread per client connection: taskq opens one per thread, so allow many.
    pyro.config.THREADPOOL_SIZE = 1024
    daemon: Any = pyro.Daemon(host=host, port=daemon_port)
    uri = daemon.register(TaskqBroker())
    with pyro.locateNS(host=host, port=port) as nameserver:
        nameserver.register(name, uri)
    print(f"taskq Pyro broker {uri} registered as {name!r} at {host}:{port}", flush=True)
    daemon.requestLoop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m taskq_pyro.broker", description="taskq's (and kombu's) Pyro broker"
    )
    parser.add_argument("--host", default="localhost", help="the name server's host; also "
                        "the interface this broker listens on")  # fmt: skip
    parser.add_argument("--port", type=int, default=9090, help="the name server's port")
    parser.add_argument("--name", default="kombu.broker", help="the name to register under")
    parser.add_argument("--daemon-port", type=int, default=0, help="this broker's own port")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.name, daemon_port=args.daemon_port)


if __name__ == "__main__":
    main()
