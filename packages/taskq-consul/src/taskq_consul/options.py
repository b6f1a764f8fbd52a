"""The Consul broker URL and ``broker_transport_options``.

``consul://host:port`` as kombu reads it (path and credentials ignored; ``localhost:8500`` when
left out). ``consul+https://`` talks TLS to the agent. Options, where kombu has a name, use it:

- ``visibility_timeout`` (3600 s): a delivery not acked by then goes back to its queue.
- ``session_ttl`` (15 s, Consul allows 10-86400): how soon a dead consumer's session expires
  and its deliveries come back.
- ``prefix`` (``kombu``, kombu's ``Channel.prefix``): the KV folder that holds the queues.
- ``token``: a Consul ACL token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from taskq.exceptions import ImproperlyConfigured
from taskq.transports.options import BROKER_OPTIONS, seconds_option

__all__ = ["ConsulOptions", "DEFAULT_PORT"]

DEFAULT_PORT = 8500


@dataclass(frozen=True, slots=True)
class ConsulOptions:
    host: str = "localhost"
    port: int = DEFAULT_PORT
    scheme: str = "http"
    visibility_timeout: float = 3600.0
    session_ttl: int = 15
    prefix: str = "kombu"
    token: str | None = None

    @classmethod
    def read(cls, url: str, options: Mapping[str, Any]) -> ConsulOptions:
        parts = urlsplit(url)
        if parts.scheme not in ("consul", "consul+https"):
            raise ImproperlyConfigured("broker_url", f"not a consul:// URL: {url!r}")
        ttl = options.get("session_ttl", 15)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 10 <= ttl <= 86400:
            raise ImproperlyConfigured(
                BROKER_OPTIONS, f"session_ttl must be whole seconds from 10 to 86400, got {ttl!r}"
            )
        prefix = options.get("prefix", "kombu")
        if not isinstance(prefix, str) or not prefix.strip("/"):
            raise ImproperlyConfigured(BROKER_OPTIONS, f"prefix must be a name, got {prefix!r}")
        token = options.get("token")
        if token is not None and not isinstance(token, str):
            raise ImproperlyConfigured(BROKER_OPTIONS, "token must be a string")
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or DEFAULT_PORT,
            scheme="https" if parts.scheme == "consul+https" else "http",
            visibility_timeout=seconds_option(
                options, "visibility_timeout", 3600.0, BROKER_OPTIONS
            ),
            session_ttl=ttl,
            prefix=prefix,
            token=token,
        )
