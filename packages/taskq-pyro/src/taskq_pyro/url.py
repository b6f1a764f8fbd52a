"""``pyro://host[:port]/name``: the Pyro name server, and the broker's name in it.

kombu reads the same URL but always asks the name server on port 9090, whatever the URL
says; taskq honours the port (default 9090). The path is the name the broker is registered
under (``kombu.broker`` when the URL has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_PORT", "DEFAULT_NAME", "PyroUrl", "parse_url"]

DEFAULT_PORT = 9090
DEFAULT_NAME = "kombu.broker"


@dataclass(frozen=True, slots=True)
class PyroUrl:
    host: str
    port: int
    name: str

    @property
    def pyroname(self) -> str:
        """The ``PYRONAME:`` URI a Pyro proxy resolves through the name server."""
        return f"PYRONAME:{self.name}@{self.host}:{self.port}"


def parse_url(url: str) -> PyroUrl:
    parts = urlsplit(url)
    if parts.scheme != "pyro":
        raise ValueError(f"not a pyro:// URL: {url!r}")
    name = unquote(parts.path).strip("/") or DEFAULT_NAME
    return PyroUrl(parts.hostname or "localhost", parts.port or DEFAULT_PORT, name)
