"""``zookeeper://host:port[,host:port...]/vhost``: which servers, and the root znode.

kombu reads the same URL: the first host comes from the URL's netloc, further hosts are
comma-separated (``zookeeper://a:2181,b:2181/vhost``), a host without a port uses 2181, and
the path (the virtual host) becomes the parent znode of every queue: ``/vhost/<queue>``, or
``/<queue>`` for an empty vhost or ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_PORT", "ZookeeperUrl", "parse_url"]

DEFAULT_PORT = 2181


@dataclass(frozen=True, slots=True)
class ZookeeperUrl:
    #: kazoo's connection string: ``host:port,host:port``.
    hosts: str
    #: The znode every queue lives under, as kombu computes it (``/`` or ``/vhost``).
    root: str


def _host_port(item: str) -> str:
    host, sep, port = item.rpartition(":")
    if not sep or not port.isdigit():
        return f"{item}:{DEFAULT_PORT}"
    if not host:
        raise ValueError(f"no host before the port in {item!r}")
    return f"{host}:{int(port)}"


def parse_url(url: str) -> ZookeeperUrl:
    parts = urlsplit(url)
    if parts.scheme != "zookeeper":
        raise ValueError(f"not a zookeeper:// URL: {url!r}")
    netloc = parts.netloc.rpartition("@")[2] or f"localhost:{DEFAULT_PORT}"
    hosts = [_host_port(item) for item in netloc.split(",") if item]
    vhost = unquote(parts.path).strip("/")
    return ZookeeperUrl(hosts=",".join(hosts), root="/" + vhost)
