"""Direct-exchange bindings, kept in SQS itself so every process sees them.

SQS has no exchanges. kombu keeps an SQS channel's bindings in that process's memory, which
is why a reply sent by another process cannot find them; taskq needs ``send_direct`` to work
across processes (a worker replying to a client), so bindings live in queue *tags*:

- the *registry* of a binding is an empty queue named ``taskq-binding-<hash>`` (after the
  prefix), the hash of exchange and routing key; each tag on it names one bound queue
  (key: a hash of the queue's name, value: the name). ``send_direct`` reads it in one call.
- the bound queue carries ``taskq-bound-<hash>`` for each of its bindings, so
  ``delete_queue`` (from any process) knows which registries to clean; a registry left with
  no queue is deleted.

Limits (SQS's): 50 tags per queue, so at most 50 queues bound with one exchange and key, and
tag values of 256 characters (a queue name is at most 80).
"""

from __future__ import annotations

import hashlib
from typing import Any

from taskq_sqs.errors import NO_QUEUE_CODES
from taskq_sqs.queues import QueueDirectory
from taskq_sqs.sdk import ClientError, error_code, field_dict

__all__ = ["Bindings"]

_REGISTRY = "taskq-binding-"
_BOUND = "taskq-bound-"
_MEMBER = "q-"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:40]


class Bindings:
    def __init__(self, directory: QueueDirectory) -> None:
        self._directory = directory

    def _registry_name(self, binding: str) -> str:
        return self._directory.sqs_name(_REGISTRY + binding)

    def bind(self, queue: str, queue_url: str, exchange: str, routing_key: str) -> None:
        binding = _digest(exchange, routing_key)
        client = self._directory.client(queue)
        registry = self._directory.url_of_sqs_name(self._registry_name(binding), create=True)
        client.tag_queue(QueueUrl=registry, Tags={_MEMBER + _digest(queue): queue})
        client.tag_queue(QueueUrl=queue_url, Tags={_BOUND + binding: "1"})

    def lookup(self, exchange: str, routing_key: str) -> list[str]:
        """The queues bound to ``exchange`` with ``routing_key``, by name (sorted)."""
        name = self._registry_name(_digest(exchange, routing_key))
        registry = self._directory.url_of_sqs_name(name, create=False)
        if registry is None:
            return []
        tags = self._tags(registry)
        if tags is None:
            self._directory.forget_url(registry)
            return []
        return sorted(v for k, v in tags.items() if k.startswith(_MEMBER))

    def unbind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Drop one binding from its registry (a queue found gone when sending to it)."""
        self._leave(queue, _digest(exchange, routing_key))

    def unbind_all(self, queue: str, queue_url: str) -> None:
        """Drop every binding of ``queue`` (before the queue itself is deleted)."""
        tags = self._tags(queue_url) or {}
        for key in tags:
            if key.startswith(_BOUND):
                self._leave(queue, key[len(_BOUND) :])

    def _leave(self, queue: str, binding: str) -> None:
        registry = self._directory.url_of_sqs_name(self._registry_name(binding), create=False)
        if registry is None:
            return
        client = self._directory.client(queue)
        try:
            client.untag_queue(QueueUrl=registry, TagKeys=[_MEMBER + _digest(queue)])
        except ClientError as exc:
            if error_code(exc) not in NO_QUEUE_CODES:
                raise
            self._directory.forget_url(registry)
            return
        remaining = self._tags(registry)
        if remaining is not None and not any(k.startswith(_MEMBER) for k in remaining):
            self._delete_registry(client, registry)

    def _delete_registry(self, client: Any, registry: str) -> None:
        self._directory.forget_url(registry)
        try:
            client.delete_queue(QueueUrl=registry)
        except ClientError as exc:
            if error_code(exc) not in NO_QUEUE_CODES:
                raise

    def _tags(self, url: str) -> dict[str, str] | None:
        """The queue's tags; ``None`` when the queue is gone."""
        client = self._directory.client("")
        try:
            answer: Any = client.list_queue_tags(QueueUrl=url)
        except ClientError as exc:
            if error_code(exc) in NO_QUEUE_CODES:
                return None
            raise
        return {str(k): str(v) for k, v in field_dict(answer, "Tags").items()}
