"""Where each queue lives: SQS names, queue URLs, creation and the queues' attributes.

URLs are cached per transport (kombu keeps the same cache). A queue is created the first
time something is published to or declared on it, with ``visibility_timeout`` and the
``sqs-creation-attributes``/``queue_tags`` options, as kombu creates it; fetching or counting
a queue that does not exist does not create it. With ``predefined_queues`` only those queues
exist, and nothing is created.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from taskq.exceptions import ImproperlyConfigured
from taskq.transports.options import BROKER_OPTIONS
from taskq_sqs.clients import Clients
from taskq_sqs.errors import NO_QUEUE_CODES
from taskq_sqs.names import sqs_queue_name
from taskq_sqs.options import SqsOptions
from taskq_sqs.sdk import ClientError, error_code, field_dict

__all__ = ["QueueDirectory", "Redrive"]

#: How long a queue's redrive policy is trusted before it is read again (kombu: 300 s).
REDRIVE_CACHE_SECONDS = 300.0


class Redrive:
    """A queue's RedrivePolicy: where SQS moves a message received too often."""

    __slots__ = ("max_receive_count", "target_arn")

    def __init__(self, target_arn: str, max_receive_count: int) -> None:
        self.target_arn = target_arn
        self.max_receive_count = max_receive_count

    @property
    def target_name(self) -> str:
        return self.target_arn.rsplit(":", 1)[-1]


class QueueDirectory:
    def __init__(self, clients: Clients, options: SqsOptions) -> None:
        self._clients = clients
        self._options = options
        self._lock = threading.Lock()
        self._urls: dict[str, str] = {}
        self._redrive: dict[str, tuple[Redrive | None, float]] = {}

    def sqs_name(self, queue: str) -> str:
        return sqs_queue_name(queue, self._options.queue_name_prefix)

    def client(self, queue: str) -> Any:
        return self._clients.for_queue(self.sqs_name(queue))

    def url(self, queue: str, *, create: bool) -> str | None:
        """The queue's URL; ``None`` when it does not exist and ``create`` is false."""
        return self.url_of_sqs_name(self.sqs_name(queue), create=create)

    def url_of_sqs_name(
        self, name: str, *, create: bool, attributes: Mapping[str, str] | None = None
    ) -> str | None:
        with self._lock:
            cached = self._urls.get(name)
        if cached is not None:
            return cached
        predefined = self._options.predefined_queues
        if predefined:
            entry = predefined.get(name)
            if entry is None:
                raise ImproperlyConfigured(
                    BROKER_OPTIONS, f"queue {name!r} must be listed in predefined_queues"
                )
            url = entry.url
        else:
            client = self._clients.for_queue(name)
            url = _get_url(client, name)
            if url is None:
                if not create:
                    return None
                url = self._create(client, name, attributes or {})
        with self._lock:
            self._urls[name] = url
        return url

    def _create(self, client: Any, name: str, extra: Mapping[str, str]) -> str:
        attributes = {"VisibilityTimeout": str(self._options.visibility_timeout)}
        if name.endswith(".fifo"):
            attributes["FifoQueue"] = "true"
        attributes.update(self._options.creation_attributes)
        attributes.update(extra)
        params: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if self._options.queue_tags:
            params["tags"] = dict(self._options.queue_tags)
        try:
            return str(client.create_queue(**params)["QueueUrl"])
        except ClientError as exc:
            # Created meanwhile by another worker with other attributes: use it as it is.
            if "QueueAlreadyExists" in error_code(exc) or "QueueNameExists" in error_code(exc):
                url = _get_url(client, name)
                if url is not None:
                    return url
            raise

    def forget(self, queue: str) -> None:
        name = self.sqs_name(queue)
        with self._lock:
            url = self._urls.pop(name, None)
            if url is not None:
                self._redrive.pop(url, None)

    def forget_url(self, url: str) -> None:
        with self._lock:
            for name in [n for n, u in self._urls.items() if u == url]:
                del self._urls[name]
            self._redrive.pop(url, None)

    def attributes(self, client: Any, url: str, names: list[str]) -> dict[str, str]:
        answer: Any = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        return {str(k): str(v) for k, v in field_dict(answer, "Attributes").items()}

    def redrive(self, client: Any, url: str) -> Redrive | None:
        """The queue's RedrivePolicy (read again after five minutes), or ``None``."""
        now = time.monotonic()
        with self._lock:
            cached = self._redrive.get(url)
        if cached is not None and now - cached[1] < REDRIVE_CACHE_SECONDS:
            return cached[0]
        policy = self.attributes(client, url, ["RedrivePolicy"]).get("RedrivePolicy")
        found: Redrive | None = None
        if policy:
            parsed: Any = json.loads(policy)
            found = Redrive(str(parsed["deadLetterTargetArn"]), int(parsed["maxReceiveCount"]))
        with self._lock:
            self._redrive[url] = (found, now)
        return found


def _get_url(client: Any, name: str) -> str | None:
    try:
        return str(client.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if error_code(exc) in NO_QUEUE_CODES:
            return None
        raise
