"""How taskq names Pub/Sub topics and subscriptions: kombu's gcpubsub layout (kombu 5.4+).

kombu maps an AMQP-style queue bound to a direct exchange onto Pub/Sub like this:

- the **exchange** is a topic whose id is the exchange name, untouched (``celery``);
- the **queue** is a subscription on that topic whose id is the queue name with the
  ``queue_name_prefix`` (``kombu-``) in front, dots turned into dashes and other punctuation
  except ``_`` and ``-`` into underscores (``celery`` -> ``kombu-celery``), filtered on the
  message attribute ``routing_key``;
- a **fanout** exchange is a topic too, with one subscription per consumer.

taskq keeps that layout so a Celery worker and a taskq worker consume the same subscription.
What kombu has no notion of gets names of taskq's own, suffixed so they cannot collide with a
queue kombu would name: the topic and subscription holding a queue's delayed messages
(``<subscription id>-taskq-delayed``) and the fanout subscriptions taskq subscribers create.
"""

from __future__ import annotations

import string
import uuid
from urllib.parse import urlsplit

__all__ = [
    "project_from_url",
    "entity_name",
    "topic_path",
    "subscription_path",
    "delayed_name",
    "fanout_subscription_name",
    "routing_filter",
    "routing_key_of_filter",
]

# kombu's table: dots become dashes, every other punctuation but "_", "." and "-" an underscore.
_REPLACED = set(string.punctuation) - {"_", ".", "-"}
_TABLE = {ord("."): ord("-"), **{ord(c): ord("_") for c in _REPLACED}}

_DELAYED_SUFFIX = "-taskq-delayed"


def project_from_url(url: str) -> str:
    """The project id of ``gcpubsub://projects/<project-id>`` (a trailing slash is fine)."""
    parts = urlsplit(url)
    if parts.scheme != "gcpubsub":
        raise ValueError(f"not a gcpubsub:// URL: {url!r}")
    if parts.hostname != "projects":
        raise ValueError(f"a gcpubsub URL reads gcpubsub://projects/<project-id>, got {url!r}")
    project = parts.path.strip("/")
    if not project or "/" in project:
        raise ValueError(f"a gcpubsub URL reads gcpubsub://projects/<project-id>, got {url!r}")
    return project


def entity_name(name: str, prefix: str) -> str:
    """The subscription id kombu gives queue ``name``: prefixed once, punctuation replaced."""
    if not name.startswith(prefix):
        name = prefix + name
    return name.translate(_TABLE)


def topic_path(project: str, topic_id: str) -> str:
    return f"projects/{project}/topics/{topic_id}"


def subscription_path(project: str, subscription_id: str) -> str:
    return f"projects/{project}/subscriptions/{subscription_id}"


def delayed_name(subscription_id: str) -> str:
    """Topic and subscription id holding the delayed messages of one queue's subscription."""
    return subscription_id + _DELAYED_SUFFIX


def fanout_subscription_name(exchange: str, prefix: str) -> str:
    """A new subscription id for one subscriber of the fanout ``exchange``."""
    return f"{entity_name(exchange, prefix)}-taskq-{uuid.uuid4().hex}"


def routing_filter(routing_key: str) -> str:
    """The subscription filter kombu sets for a queue bound with ``routing_key``."""
    escaped = routing_key.replace("\\", "\\\\").replace('"', '\\"')
    return f'attributes.routing_key="{escaped}"'


def routing_key_of_filter(text: str) -> str | None:
    """The routing key a kombu-style filter selects; ``None`` for no filter or another kind."""
    head, tail = 'attributes.routing_key="', '"'
    text = text.strip()
    if not (text.startswith(head) and text.endswith(tail)) or len(text) < len(head) + 1:
        return None
    inner = text[len(head) : -len(tail)]
    return inner.replace('\\"', '"').replace("\\\\", "\\")
