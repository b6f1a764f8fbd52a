"""Redis clients from broker and result URLs, read the way Celery and kombu read them.

URL forms:

- ``redis://[user:password@]host[:port][/db]`` (port 6379, database 0 by default);
- ``rediss://...``: the same over TLS;
- ``redis+socket:///path/to/redis.sock[?virtual_host=N]`` (kombu's form; ``?db=N`` also works);
- ``sentinel://host:port[;sentinel://host2:port...][/db]``: ask these Sentinels for the master
  named by the ``master_name`` option (port 26379 by default). The password in the URL is the
  master's; the Sentinels' own credentials go in ``sentinel_kwargs``.

Connection options, from the options mapping or the URL's query string (the URL wins, as in
kombu): ``socket_timeout``, ``socket_connect_timeout``, ``socket_keepalive``,
``socket_keepalive_options``, ``health_check_interval`` (25 s, kombu's default),
``retry_on_timeout``, ``max_connections`` (10, kombu's default), ``client_name``, and for
Sentinel ``master_name``, ``sentinel_kwargs``, ``min_other_sentinels``.

TLS: ``ssl_cert_reqs`` (``required``/``optional``/``none`` or ``CERT_*``, or an
:class:`ssl.VerifyMode`), ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` and
``ssl_check_hostname``, in the URL's query string or in a mapping under the ``ssl`` option
(kombu's ``Connection(ssl=...)``; ``broker_use_ssl`` and ``redis_backend_use_ssl``, Celery's
setting names, are accepted as the key too). A non-empty mapping turns TLS on for ``redis://``
and ``sentinel://`` as well, as kombu does. Unlike kombu, ``rediss://`` without
``ssl_cert_reqs`` verifies the server's certificate (kombu silently skips the check): pass
``ssl_cert_reqs=none`` to get kombu's behaviour.

Every client is bytes-in, bytes-out (``decode_responses=False``) over a blocking connection pool
that threads share: a thread that finds every connection in use waits for one instead of
failing.

:class:`~taskq_redis.direct.DirectConnection` runs the hot paths' single commands on a
connection of its own, made from the same settings.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import AbstractConnection
from redis.retry import Retry
from redis.sentinel import Sentinel

from taskq.exceptions import ImproperlyConfigured
from taskq.tls import cert_reqs
from taskq.urls import mask_url
from taskq_redis.options import read_bool, read_int, read_mapping, read_seconds, read_str

__all__ = [
    "BROKER_URL",
    "BROKER_OPTIONS",
    "RedisURL",
    "parse_redis_url",
    "client_from_url",
]

#: The settings a broker's URL and options come from, named in error messages.
BROKER_URL = "broker_url"
BROKER_OPTIONS = "broker_transport_options"

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
#: kombu's defaults for its Redis transport.
DEFAULT_MAX_CONNECTIONS = 10
DEFAULT_HEALTH_CHECK_INTERVAL = 25

_TLS_KEYS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)
#: Where a TLS mapping may sit in the options: kombu's name, then Celery's setting names.
_TLS_OPTION_KEYS = ("ssl", "broker_use_ssl", "redis_backend_use_ssl")
_CONNECTION_KEYS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "retry_on_timeout",
    "max_connections",
    "client_name",
)
#: What a URL's query string may hold; anything else is a typo worth failing on.
_QUERY_KEYS = frozenset({*_TLS_KEYS, *_CONNECTION_KEYS, "db", "virtual_host"})
Kind = Literal["tcp", "unix", "sentinel"]


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed Redis URL: where the server is, which database, which credentials."""

    kind: Kind
    #: TCP: one ``(host, port)``; Sentinel: every Sentinel; Unix socket: none.
    hosts: tuple[tuple[str, int], ...]
    db: int = 0
    #: The Unix socket's path (``redis+socket://``).
    path: str | None = None
    username: str | None = None
    password: str | None = None
    #: ``rediss://``.
    tls: bool = False
    #: The query string's parameters (last value wins), ``db``/``virtual_host`` removed.
    query: dict[str, str] = field(default_factory=dict[str, str])


def parse_redis_url(url: str, *, setting: str = BROKER_URL) -> RedisURL:
    """Read a ``redis://``, ``rediss://``, ``redis+socket://`` or ``sentinel://`` URL.

    Raises :class:`~taskq.exceptions.ImproperlyConfigured` naming ``setting`` (with the
    password masked) for anything else.
    """
    if not isinstance(url, str):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ImproperlyConfigured(setting, f"a Redis URL must be a string, got {url!r}")
    parts = [part.strip() for part in url.split(";") if part.strip()]
    if not parts:
        raise ImproperlyConfigured(setting, "the Redis URL is empty")
    scheme = _scheme(parts[0], setting)
    if scheme == "sentinel":
        return _parse_sentinel(parts, setting)
    if len(parts) > 1:
        raise ImproperlyConfigured(
            setting,
            f"{mask_url(url)!r}: only sentinel:// URLs may list several servers (joined by ';')",
        )
    if scheme == "redis+socket":
        return _parse_socket(parts[0], setting)
    if scheme in ("redis", "rediss"):
        return _parse_tcp(parts[0], scheme == "rediss", setting)
    raise ImproperlyConfigured(
        setting,
        f"{mask_url(url)!r} is not a Redis URL: use redis://, rediss://, redis+socket:// "
        "or sentinel://",
    )


def client_from_url(
    url: str,
    options: Mapping[str, Any],
    *,
    url_setting: str = BROKER_URL,
    options_setting: str = BROKER_OPTIONS,
) -> redis.Redis:
    """A Redis client for ``url`` with the connection ``options`` (see the module docstring).

    Building it touches no network: the first command connects. ``url_setting`` and
    ``options_setting`` are the setting names errors mention (a result backend passes
    ``result_backend`` and ``result_backend_transport_options``).
    """
    parsed = parse_redis_url(url, setting=url_setting)
    merged: dict[str, Any] = dict(options)
    for key in _CONNECTION_KEYS:
        if key in parsed.query:
            merged[key] = parsed.query[key]
    kwargs = _connection_kwargs(parsed, merged, options_setting)
    tls = _tls_kwargs(parsed, options, url_setting, options_setting)
    max_connections = read_int(
        merged, "max_connections", DEFAULT_MAX_CONNECTIONS, options_setting, minimum=1
    )
    if parsed.kind == "sentinel":
        return _sentinel_client(parsed, merged, kwargs, tls, max_connections, options_setting)
    if parsed.kind == "unix":
        connection_class: type[AbstractConnection] = redis.UnixDomainSocketConnection
        kwargs["path"] = parsed.path
        if tls is not None:
            raise ImproperlyConfigured(
                options_setting, "TLS options do not apply to a redis+socket:// URL"
            )
    else:
        host, port = parsed.hosts[0]
        kwargs["host"] = host
        kwargs["port"] = port
        connection_class = redis.Connection
        if tls is not None:
            connection_class = redis.SSLConnection
            kwargs.update(tls)
    kwargs["connection_class"] = connection_class
    pool = redis.BlockingConnectionPool(max_connections=max_connections, **kwargs)
    return redis.Redis(connection_pool=pool)


# -- URL forms ----------------------------------------------------------------------------------


def _scheme(part: str, setting: str) -> str:
    scheme, sep, _ = part.partition("://")
    if not sep:
        raise ImproperlyConfigured(
            setting, f"{mask_url(part)!r} is not a URL (expected redis://host:port/db)"
        )
    return scheme.lower()


def _split(part: str, setting: str) -> Any:
    try:
        parts = urlsplit(part)
        _ = parts.port  # raises for a port that is not a number
    except ValueError as exc:
        raise ImproperlyConfigured(setting, f"{mask_url(part)!r}: {exc}") from None
    return parts


def _query(raw: str, url: str, setting: str) -> dict[str, str]:
    query = dict(parse_qsl(raw, keep_blank_values=True))
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            setting,
            f"{mask_url(url)!r}: unknown query parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_QUERY_KEYS))}",
        )
    return query


def _db(text: str | None, url: str, setting: str) -> int | None:
    """A database number from a path (``/3``) or a query value (``3``); None when absent."""
    if text is None:
        return None
    text = text.strip("/")
    if not text:
        return None
    if not text.isdigit():
        raise ImproperlyConfigured(
            setting, f"{mask_url(url)!r}: the database must be a number >= 0, got {text!r}"
        )
    return int(text)


def _one_db(url: str, setting: str, *candidates: int | None) -> int:
    given = {db for db in candidates if db is not None}
    if len(given) > 1:
        raise ImproperlyConfigured(
            setting, f"{mask_url(url)!r} names several databases: {sorted(given)}"
        )
    return given.pop() if given else 0


def _credentials(parts: Any) -> tuple[str | None, str | None]:
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return username, password


def _parse_tcp(url: str, tls: bool, setting: str) -> RedisURL:
    parts = _split(url, setting)
    query = _query(parts.query, url, setting)
    db = _one_db(
        url,
        setting,
        _db(parts.path, url, setting),
        _db(query.pop("db", None), url, setting),
        _db(query.pop("virtual_host", None), url, setting),
    )
    username, password = _credentials(parts)
    host = parts.hostname or "localhost"
    return RedisURL(
        kind="tcp",
        hosts=((host, parts.port or DEFAULT_PORT),),
        db=db,
        username=username,
        password=password,
        tls=tls,
        query=query,
    )


def _parse_socket(url: str, setting: str) -> RedisURL:
    parts = _split(url, setting)
    if not parts.path or parts.path == "/":
        raise ImproperlyConfigured(
            setting, f"{mask_url(url)!r}: give the socket's path, redis+socket:///path/to.sock"
        )
    if parts.hostname:
        raise ImproperlyConfigured(
            setting,
            f"{mask_url(url)!r}: a socket URL has no host; write redis+socket:///path/to.sock "
            "(three slashes)",
        )
    query = _query(parts.query, url, setting)
    db = _one_db(
        url,
        setting,
        _db(query.pop("virtual_host", None), url, setting),
        _db(query.pop("db", None), url, setting),
    )
    username, password = _credentials(parts)
    return RedisURL(
        kind="unix",
        hosts=(),
        path=unquote(parts.path),
        db=db,
        username=username,
        password=password,
        query=query,
    )


def _parse_sentinel(parts: list[str], setting: str) -> RedisURL:
    hosts: list[tuple[str, int]] = []
    dbs: list[int | None] = []
    query: dict[str, str] = {}
    username = password = None
    for part in parts:
        if _scheme(part, setting) != "sentinel":
            raise ImproperlyConfigured(
                setting, f"{mask_url(part)!r}: every server of a Sentinel URL is sentinel://"
            )
        split = _split(part, setting)
        query.update(_query(split.query, part, setting))
        dbs.append(_db(split.path, part, setting))
        dbs.append(_db(query.pop("db", None), part, setting))
        dbs.append(_db(query.pop("virtual_host", None), part, setting))
        if split.hostname is None:
            raise ImproperlyConfigured(setting, f"{mask_url(part)!r}: a Sentinel needs a host")
        hosts.append((split.hostname, split.port or DEFAULT_SENTINEL_PORT))
        if username is None and password is None:
            username, password = _credentials(split)
    return RedisURL(
        kind="sentinel",
        hosts=tuple(hosts),
        db=_one_db(";".join(parts), setting, *dbs),
        username=username,
        password=password,
        query=query,
    )


# -- connection settings ------------------------------------------------------------------------


def _connection_kwargs(parsed: RedisURL, merged: Mapping[str, Any], setting: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "db": parsed.db,
        "username": parsed.username,
        "password": parsed.password,
        "decode_responses": False,
        "retry_on_timeout": read_bool(merged, "retry_on_timeout", False, setting),
        "health_check_interval": read_seconds(
            merged, "health_check_interval", DEFAULT_HEALTH_CHECK_INTERVAL, setting, allow_zero=True
        ),
    }
    for key in ("socket_timeout", "socket_connect_timeout"):
        value = read_seconds(merged, key, None, setting)
        if value is not None:
            kwargs[key] = value
    client_name = read_str(merged, "client_name", None, setting)
    if client_name is not None:
        kwargs["client_name"] = client_name
    if parsed.kind != "unix":
        if merged.get("socket_keepalive") is not None:
            kwargs["socket_keepalive"] = read_bool(merged, "socket_keepalive", True, setting)
        keepalive_options = read_mapping(merged, "socket_keepalive_options", setting)
        if keepalive_options is not None:
            kwargs["socket_keepalive_options"] = keepalive_options
    return kwargs


def _tls_kwargs(
    parsed: RedisURL, options: Mapping[str, Any], url_setting: str, options_setting: str
) -> dict[str, Any] | None:
    """redis-py's ``ssl_*`` arguments, or None for a plain connection."""
    settings: dict[str, Any] = {}
    enabled = parsed.tls
    for key in _TLS_OPTION_KEYS:
        value = options.get(key)
        if value is None or value is False:
            continue
        if value is True:
            enabled = True
            continue
        mapping = read_mapping(options, key, options_setting) or {}
        unknown = sorted(set(mapping) - set(_TLS_KEYS))
        if unknown:
            raise ImproperlyConfigured(
                options_setting,
                f"{key}: unknown TLS setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(_TLS_KEYS)}",
            )
        enabled = enabled or bool(mapping)
        settings.update(mapping)
        break
    url_tls = {key: value for key, value in parsed.query.items() if key in _TLS_KEYS}
    if url_tls:
        enabled = True
        settings.update(url_tls)
    if not enabled:
        return None
    source = url_setting if url_tls else options_setting
    kwargs: dict[str, Any] = {}
    reqs = cert_reqs(settings.get("ssl_cert_reqs", "required"), source, "ssl_cert_reqs")
    kwargs["ssl_cert_reqs"] = reqs
    check_default = reqs != ssl.CERT_NONE
    kwargs["ssl_check_hostname"] = read_bool(settings, "ssl_check_hostname", check_default, source)
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        value = read_str(settings, key, None, source)
        if value is not None:
            kwargs[key] = value
    return kwargs


def _sentinel_client(
    parsed: RedisURL,
    merged: Mapping[str, Any],
    kwargs: dict[str, Any],
    tls: dict[str, Any] | None,
    max_connections: int,
    setting: str,
) -> redis.Redis:
    master_name = read_str(merged, "master_name", None, setting)
    if not master_name:
        raise ImproperlyConfigured(
            setting,
            "a sentinel:// URL needs the master_name option: the name the Sentinels know "
            "the master by (e.g. {'master_name': 'mymaster'})",
        )
    sentinel_kwargs = read_mapping(merged, "sentinel_kwargs", setting)
    min_others = read_int(merged, "min_other_sentinels", 0, setting)
    master_kwargs = dict(kwargs)
    sentinel_connection = {
        key: value
        for key, value in kwargs.items()
        if key not in ("db", "username", "password", "client_name")
    }
    if tls is not None:
        master_kwargs["ssl"] = True
        master_kwargs.update(tls)
    sentinel_settings = (
        dict(sentinel_kwargs)
        if sentinel_kwargs is not None
        else {k: v for k, v in sentinel_connection.items() if k.startswith("socket_")}
    )
    # redis-py's client for each Sentinel retries with backoff (seconds for one that refuses
    # connections or fails its TLS handshake) before the next is asked. Here the next Sentinel
    # is the retry, and the transport's reconnect and the backend's retry_policy retry the
    # whole discovery; a ``retry`` given in sentinel_kwargs is kept.
    sentinel_settings.setdefault("retry", Retry(NoBackoff(), 0))
    sentinel = Sentinel(
        list(parsed.hosts), min_other_sentinels=min_others, sentinel_kwargs=sentinel_settings
    )
    untyped: Any = sentinel  # redis-py leaves master_for's arguments untyped
    client: redis.Redis = untyped.master_for(
        master_name, redis_class=redis.Redis, max_connections=max_connections, **master_kwargs
    )
    return client
