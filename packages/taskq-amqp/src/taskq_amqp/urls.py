"""Broker URLs and transport options, read once when the transport is built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from taskq.options import read_bool
from taskq_amqp.certificates import BROKER_URL, TlsSettings, tls_settings

__all__ = ["AmqpSettings", "parse_settings", "SCHEMES"]

SCHEMES = ("amqp", "amqps", "pyamqp")
DEFAULT_PORTS = {"amqp": 5672, "pyamqp": 5672, "amqps": 5671}


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    """Where the broker is and how this transport behaves on it."""

    host: str
    port: int
    userid: str
    password: str
    virtual_host: str
    #: None: plain AMQP (see :mod:`taskq_amqp.certificates`).
    tls: TlsSettings | None
    #: Seconds between heartbeats on the consuming connection (0: none). The publishing
    #: connection never heartbeats: it is idle between publishes and reconnects on failure.
    heartbeat: float
    connect_timeout: float
    #: How long a publish keeps retrying through a lost connection before TransportError.
    publish_retry_timeout: float
    #: ``None``: a fetched message stays with its consumer until settled or the connection
    #: drops (AMQP's own rule). A number: the transport gives it back after that many seconds.
    visibility_timeout: float | None
    #: kombu's ``confirm_publish``: wait for each message's confirm before ``publish``
    #: returns. Off by default: confirms are pipelined (see :mod:`taskq_amqp.publisher`).
    confirm_publish: bool
    #: Pipelined confirms: at most this many messages unconfirmed before a publish waits.
    confirm_window: int
    #: Pipelined confirms: a publish waits when the oldest unconfirmed message is older.
    confirm_max_age: float
    #: ``x-queue-type`` of the ``celery_delayed_*`` queues when this transport declares them
    #: (Celery's ``broker_native_delayed_delivery_queue_type``, quorum by default).
    delayed_queue_type: str

    @property
    def ssl(self) -> bool:
        """Whether connections use TLS."""
        return self.tls is not None


def _float(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"broker_transport_options[{key!r}] must be a number, not {value!r}")
    return float(value)


def parse_settings(url: str, options: Mapping[str, Any]) -> AmqpSettings:
    """Read ``amqp://user:pass@host:port/vhost`` as Celery and kombu do.

    The path is the virtual host (``/`` when empty, as kombu's ``amqp://host//`` and
    ``amqp://host`` both mean the default vhost); ``amqps`` turns TLS on, and the query
    ``?ssl=true`` does too, as kombu reads it, and so do TLS options in the query string
    (``?ssl_ca_certs=...``) or the ``ssl`` option (``broker_use_ssl``): see
    :mod:`taskq_amqp.certificates`.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"not an AMQP URL: {url!r}")
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    query = dict(parse_qsl(parts.query))
    host = parts.hostname or "localhost"
    url_tls = (
        read_bool(query.get("ssl", False), setting=BROKER_URL, name="ssl") or scheme == "amqps"
    )
    tls = tls_settings(url_tls, query, options.get("ssl"), host)
    visibility = options.get("visibility_timeout")
    if visibility is not None and (
        isinstance(visibility, bool) or not isinstance(visibility, int | float)
    ):
        raise ValueError("broker_transport_options['visibility_timeout'] must be a number")
    queue_type = str(options.get("delayed_delivery_queue_type", "quorum"))
    if queue_type not in {"quorum", "classic"}:
        raise ValueError("delayed_delivery_queue_type must be 'quorum' or 'classic'")
    confirm_publish = options.get("confirm_publish", False)
    if not isinstance(confirm_publish, bool):
        raise ValueError("broker_transport_options['confirm_publish'] must be True or False")
    confirm_window = options.get("confirm_window", 1000)
    if (
        isinstance(confirm_window, bool)
        or not isinstance(confirm_window, int)
        or confirm_window < 1
    ):
        raise ValueError("broker_transport_options['confirm_window'] must be a positive int")
    return AmqpSettings(
        host=host,
        port=parts.port or DEFAULT_PORTS[scheme],
        userid=unquote(parts.username) if parts.username else "guest",
        password=unquote(parts.password) if parts.password else "guest",
        virtual_host=path or "/",
        tls=tls,
        heartbeat=_float(options, "heartbeat", 60.0),
        connect_timeout=_float(options, "connect_timeout", 4.0),
        publish_retry_timeout=_float(options, "publish_retry_timeout", 60.0),
        visibility_timeout=None if visibility is None else float(visibility),
        confirm_publish=confirm_publish,
        confirm_window=confirm_window,
        confirm_max_age=_float(options, "confirm_max_age", 1.0),
        delayed_queue_type=queue_type,
    )
