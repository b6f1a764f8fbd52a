"""``broker_transport_options`` the ZooKeeper transport reads (unknown keys are ignored)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskq.exceptions import ImproperlyConfigured
from taskq.transports.options import BROKER_OPTIONS, seconds_option

__all__ = ["ZookeeperOptions"]


@dataclass(frozen=True, slots=True)
class ZookeeperOptions:
    #: Seconds a fetched, unsettled message stays invisible before another consumer may take
    #: it again (Celery's name and default).
    visibility_timeout: float = 3600.0
    #: The ZooKeeper session timeout: when a consumer dies (kill -9, a lost host), its
    #: ephemeral claims vanish this long after its last heartbeat and its messages return.
    #: The server clamps it to [2, 20] tick times.
    session_timeout: float = 10.0
    #: How long ``connect`` waits for a session before it raises TransportError.
    connect_timeout: float = 15.0
    #: Seconds a broadcast stays readable for subscribers that are slow to look.
    fanout_ttl: float = 60.0
    #: The largest stored message (kombu's JSON, base64 body) publish accepts. ZooKeeper
    #: refuses a znode above ``jute.maxbuffer`` (1 MiB by default) and drops the connection;
    #: raise this only with the server's and the clients' jute.maxbuffer.
    max_message_size: int = 1_048_576 - 4096

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> ZookeeperOptions:
        defaults = cls()
        size = options.get("max_message_size", defaults.max_message_size)
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ImproperlyConfigured(
                BROKER_OPTIONS, f"max_message_size must be a positive int, got {size!r}"
            )
        return cls(
            max_message_size=size,
            **{
                key: seconds_option(options, key, getattr(defaults, key), BROKER_OPTIONS)
                for key in (
                    "visibility_timeout",
                    "session_timeout",
                    "connect_timeout",
                    "fanout_ttl",
                )
            },
        )
