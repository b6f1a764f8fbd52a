"""A server certificate that does not verify: bad configuration, named, never retried.

A TLS handshake that fails verification (an unknown CA, an expired certificate, a hostname the
certificate does not hold) fails the same way on every attempt, yet redis-py reports it as a
``ConnectionError`` like a dropped socket, and retrying it only hides the cause. So it becomes
:class:`~taskq.exceptions.ImproperlyConfigured`, naming the setting the TLS options came from,
the CA the certificate was checked against and OpenSSL's reason.

The cause is found by walking the exception's ``__cause__``/``__context__`` chain for an
:class:`ssl.SSLCertVerificationError` (a Redis server's handshake, the master's behind a
Sentinel included). A Sentinel's own handshake leaves nothing to find: redis-py's Sentinel
reports every Sentinel it could not ask in one ``MasterNotFoundError`` that keeps only each
error's type. So after that error each of the client's Sentinels is asked once more for a PING,
directly, to learn why: only on the way to failing, never on a working connection.

The transport and the result backend read these settings from their client the same way
(:meth:`CertificateSettings.of_client`): what the message names is what the client was built
with, the CA file given in the URL's query string as in a mapping.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.sentinel import MasterNotFoundError

from taskq.exceptions import ImproperlyConfigured
from taskq.transports.options import BACKEND_OPTIONS
from taskq_redis.connection import BROKER_OPTIONS, BROKER_URL, parse_redis_url

__all__ = ["CertificateSettings"]

#: OpenSSL's verification result for a certificate that does not hold the host's name.
_HOSTNAME_MISMATCH = 62
_SYSTEM_CAS = "the system's default CAs (no ssl_ca_certs given)"


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    hostname_mismatch: bool
    #: ``host:port`` of the Sentinel that failed; None for a Redis server's handshake.
    sentinel: str | None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find(exc: BaseException) -> _Failure | None:
    """The certificate failure in ``exc``'s chain, if any (a Redis server's handshake)."""
    for error in _chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = (error.verify_message or error.reason or str(error)).rstrip(".")
            return _Failure(reason, error.verify_code == _HOSTNAME_MISMATCH, None)
    return None


def _no_master(exc: BaseException) -> bool:
    """Whether ``exc`` is (or came from) redis-py's Sentinel finding no master."""
    return any(isinstance(error, MasterNotFoundError) for error in _chain(exc))


def _ask_sentinels(sentinels: Sequence[Any]) -> _Failure | None:
    """The first Sentinel whose certificate does not verify, asked directly (each client has
    no retries: see ``taskq_redis.connection``)."""
    for sentinel in sentinels:
        try:
            sentinel.ping()
        except (redis.RedisError, OSError) as exc:
            failure = _find(exc)
            if failure is not None:
                kwargs = sentinel.connection_pool.connection_kwargs
                address = f"{kwargs.get('host')}:{kwargs.get('port')}"
                return _Failure(failure.reason, failure.hostname_mismatch, address)
    return None


@dataclass(frozen=True, slots=True)
class CertificateSettings:
    """Where a client's TLS options come from, to name them when a certificate fails."""

    #: The setting holding the Redis server's (or the master's) TLS options.
    setting: str
    #: The CA the server's certificate is checked against, as the message says it.
    ca: str
    #: The setting holding ``sentinel_kwargs``.
    sentinel_setting: str
    sentinel_ca: str
    #: The Sentinels' redis-py clients, asked why when none of them answered; none: not asked.
    sentinels: tuple[Any, ...] = ()

    @classmethod
    def of_client(
        cls,
        client: redis.Redis,
        url: str,
        *,
        url_setting: str,
        tls_setting: str,
        options_setting: str,
    ) -> CertificateSettings:
        """For ``client``, built from ``url`` and options by
        :func:`~taskq_redis.connection.client_from_url`: the CAs it verifies against, as it
        holds them, and ``url_setting`` when the URL's query string holds TLS options (its
        ``ssl_*`` keys), else ``tls_setting``, where they are given otherwise. A Sentinel's
        TLS is only ever in ``sentinel_kwargs``, under ``options_setting``."""
        pool: Any = client.connection_pool  # redis-py leaves pools untyped
        query = parse_redis_url(url, setting=url_setting).query
        from_url = any(key.startswith("ssl_") for key in query)
        sentinels: Any = getattr(pool, "sentinel_manager", None)
        sentinel_kwargs: Mapping[str, Any] = sentinels.sentinel_kwargs if sentinels else {}
        return cls(
            setting=url_setting if from_url else tls_setting,
            ca=_ca(pool.connection_kwargs.get("ssl_ca_certs")),
            sentinel_setting=options_setting,
            sentinel_ca=_ca(sentinel_kwargs.get("ssl_ca_certs")),
            sentinels=tuple(sentinels.sentinels) if sentinels else (),
        )

    @classmethod
    def of_broker(cls, url: str, client: redis.Redis) -> CertificateSettings:
        """For a transport's ``client``: ``broker_url``, else ``broker_use_ssl`` (the ``ssl``
        option's Celery name); the Sentinels' in ``broker_transport_options``."""
        return cls.of_client(
            client,
            url,
            url_setting=BROKER_URL,
            tls_setting="broker_use_ssl",
            options_setting=BROKER_OPTIONS,
        )

    @classmethod
    def of_backend(cls, url: str, client: redis.Redis) -> CertificateSettings:
        """For a result backend's ``client``: ``result_backend``, else
        ``redis_backend_use_ssl``; the Sentinels' in ``result_backend_transport_options``."""
        return cls.of_client(
            client,
            url,
            url_setting="result_backend",
            tls_setting="redis_backend_use_ssl",
            options_setting=BACKEND_OPTIONS,
        )

    def error(self, exc: BaseException) -> ImproperlyConfigured | None:
        """The error to raise instead of ``exc`` when a certificate in its chain did not
        verify; None when ``exc`` is something else (a lost connection, a refused one)."""
        failure = _find(exc)
        if failure is None and self.sentinels and _no_master(exc):
            failure = _ask_sentinels(self.sentinels)
        if failure is None:
            return None
        fix = (
            "connect by a name the certificate holds, or set ssl_check_hostname=False"
            if failure.hostname_mismatch
            else "give ssl_ca_certs the CA that signed the server's certificate"
        )
        if failure.sentinel is not None:
            return ImproperlyConfigured(
                self.sentinel_setting,
                f"sentinel_kwargs: the TLS certificate of the Sentinel at {failure.sentinel} "
                f"does not verify against {self.sentinel_ca}: {failure.reason}; {fix} "
                "in sentinel_kwargs",
            )
        return ImproperlyConfigured(
            self.setting,
            f"the Redis server's TLS certificate does not verify against {self.ca}: "
            f"{failure.reason}; {fix}",
        )


def _ca(path: object) -> str:
    return f"the CA file {path}" if path else _SYSTEM_CAS
