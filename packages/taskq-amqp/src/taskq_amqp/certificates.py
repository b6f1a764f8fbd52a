"""TLS to RabbitMQ: the context a connection is wrapped in, and a certificate that fails.

The TLS settings come, as Celery takes them for py-amqp, from ``broker_use_ssl`` (the ``ssl``
transport option): ``True``, a mapping of py-amqp's keys (``ca_certs``, ``cert_reqs``,
``certfile``, ``keyfile``, ``server_hostname``, plus ``check_hostname`` and ``ciphers``) or an
:class:`ssl.SSLContext`; or from the broker URL's query string with kombu's ``ssl_`` prefix
(``?ssl_ca_certs=...``). They are turned into one :class:`ssl.SSLContext` when the transport
is built, so a CA file that cannot be read is reported then, naming its setting.

Unlike py-amqp's defaults, the server's name is checked against its certificate (the URL's
host, or ``server_hostname``) whenever the certificate is verified; ``check_hostname: False``
turns that off.

A handshake that fails on a certificate (the server's does not verify, or the server refuses
this client's) fails the same way on every attempt, yet it is an ``OSError`` like a dropped
socket, which the transport retries with backoff. :meth:`TlsSettings.error` turns it into
:class:`~taskq.exceptions.ImproperlyConfigured`, naming the setting, the CA and OpenSSL's
reason, so it is raised at once and a worker stops at start.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from taskq.exceptions import ImproperlyConfigured
from taskq.options import read_bool
from taskq.tls import cert_reqs

__all__ = ["TlsSettings", "tls_settings"]

BROKER_URL = "broker_url"
BROKER_USE_SSL = "broker_use_ssl"

#: Keys of a ``broker_use_ssl`` mapping: py-amqp's, as Celery documents them, and two more.
MAPPING_KEYS = (
    "ca_certs",
    "cert_reqs",
    "certfile",
    "keyfile",
    "server_hostname",
    "check_hostname",
    "ciphers",
)
#: The same keys in the URL's query string carry kombu's ``ssl_`` prefix.
QUERY_PREFIX = "ssl_"

#: OpenSSL's verification result for a certificate that does not hold the host's name.
_HOSTNAME_MISMATCH = 62
#: OpenSSL's reasons when the server refuses the certificate this client sent (or its lack).
_REFUSED_BY_SERVER = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "TLSV1_ALERT_UNKNOWN_CA",
    }
)
_SYSTEM_CAS = "the system's default CAs (no ca_certs given)"
_CONTEXT_CAS = "the CAs of the ssl.SSLContext given"


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How a connection to the broker is wrapped in TLS, and where that was configured."""

    context: ssl.SSLContext
    #: The name sent in the handshake (SNI) and, when the context checks names, checked.
    server_hostname: str
    #: The setting the TLS options came from: ``broker_url`` or ``broker_use_ssl``.
    setting: str
    #: The CA the server's certificate is checked against, as a message says it.
    ca: str
    #: The client certificate sent, as a message says it (None: none configured here).
    client_certificate: str | None

    def wrap(self, sock: Any) -> ssl.SSLSocket:
        """``sock`` wrapped for a handshake the caller runs (py-amqp does, with its timeout)."""
        return self.context.wrap_socket(
            sock, server_hostname=self.server_hostname, do_handshake_on_connect=False
        )

    def error(self, exc: BaseException, address: str) -> ImproperlyConfigured | None:
        """What to raise instead of ``exc`` when a certificate made the handshake with the
        server at ``address`` fail; None when ``exc`` is something else (a lost or refused
        connection, a timeout), which is worth retrying."""
        key = "ssl_ca_certs" if self.setting == BROKER_URL else "ca_certs"
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = (exc.verify_message or exc.reason or str(exc)).rstrip(".")
            if exc.verify_code == _HOSTNAME_MISMATCH:
                fix = (
                    "connect by a name the certificate holds, or name one in server_hostname "
                    "(check_hostname=False skips the check)"
                )
            elif self.ca == _CONTEXT_CAS:
                fix = "load the CA that signed the server's certificate into the context"
            else:
                fix = f"give {key} the CA that signed the server's certificate"
            return ImproperlyConfigured(
                self.setting,
                f"the TLS certificate of the RabbitMQ server at {address} does not verify "
                f"against {self.ca}: {reason}; {fix}",
            )
        if isinstance(exc, ssl.SSLError) and exc.reason in _REFUSED_BY_SERVER:
            sent = self.client_certificate or "no client certificate"
            return ImproperlyConfigured(
                self.setting,
                f"the RabbitMQ server at {address} refused the TLS client certificate "
                f"({sent}): {exc.reason}; give certfile and keyfile a certificate the "
                "server's CA signed",
            )
        return None


def tls_settings(
    url_tls: bool, query: Mapping[str, str], option: object, host: str
) -> TlsSettings | None:
    """The TLS of a broker connection, or None for plain AMQP.

    ``url_tls``: the URL asks for TLS (``amqps://``, ``?ssl=true``); ``query``: the URL's
    query string; ``option``: the ``ssl`` transport option (``broker_use_ssl``); ``host``:
    the URL's host, the name checked against the certificate by default.
    """
    from_query = {key: value for key, value in query.items() if key.startswith(QUERY_PREFIX)}
    if isinstance(option, ssl.SSLContext):
        if from_query:
            raise ImproperlyConfigured(
                BROKER_URL,
                f"TLS options in the query string ({', '.join(sorted(from_query))}) cannot "
                "be combined with an ssl.SSLContext in broker_use_ssl: set them on the context",
            )
        return TlsSettings(option, host, BROKER_USE_SSL, _CONTEXT_CAS, None)
    options: dict[str, object] = {}
    if isinstance(option, Mapping):
        mapping = cast("Mapping[object, object]", option)
        unknown = sorted(str(key) for key in mapping if key not in MAPPING_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                BROKER_USE_SSL,
                f"unknown TLS setting(s) {', '.join(unknown)}; known: {', '.join(MAPPING_KEYS)} "
                "(or pass an ssl.SSLContext)",
            )
        options.update({str(key): value for key, value in mapping.items()})
    elif option is not None and not isinstance(option, bool):
        raise ImproperlyConfigured(
            BROKER_USE_SSL, f"expected True, a mapping or an ssl.SSLContext, got {option!r}"
        )
    for name, value in from_query.items():
        key = name[len(QUERY_PREFIX) :]
        if key not in MAPPING_KEYS:
            known = ", ".join(QUERY_PREFIX + k for k in MAPPING_KEYS)
            raise ImproperlyConfigured(
                BROKER_URL, f"unknown TLS setting {name} in the query string; known: {known}"
            )
        options[key] = value
    if not (url_tls or option is True or options):
        return None
    setting = BROKER_URL if from_query else BROKER_USE_SSL
    return _from_options(options, host, setting)


def _from_options(options: Mapping[str, object], host: str, setting: str) -> TlsSettings:
    prefix = QUERY_PREFIX if setting == BROKER_URL else ""
    verify_mode = cert_reqs(
        options.get("cert_reqs", ssl.CERT_REQUIRED), setting, f"{prefix}cert_reqs"
    )
    check_hostname = read_bool(
        options.get("check_hostname", verify_mode != ssl.CERT_NONE),
        setting=setting,
        name=f"{prefix}check_hostname",
    )
    ca_certs = _str(options, "ca_certs", setting, prefix)
    certfile = _str(options, "certfile", setting, prefix)
    keyfile = _str(options, "keyfile", setting, prefix)
    ciphers = _str(options, "ciphers", setting, prefix)
    server_hostname = _str(options, "server_hostname", setting, prefix) or host
    if check_hostname and verify_mode == ssl.CERT_NONE:
        raise ImproperlyConfigured(
            setting, f"{prefix}check_hostname needs {prefix}cert_reqs other than none"
        )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname  # before verify_mode, which may be CERT_NONE
    context.verify_mode = verify_mode
    try:
        if ca_certs is not None:
            context.load_verify_locations(ca_certs)
        elif verify_mode != ssl.CERT_NONE:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    except OSError as exc:  # ssl.SSLError included: a file that holds no certificate
        raise ImproperlyConfigured(
            setting, f"{prefix}ca_certs {ca_certs}: cannot load it: {exc}"
        ) from exc
    if keyfile is not None and certfile is None:
        raise ImproperlyConfigured(setting, f"{prefix}keyfile needs {prefix}certfile")
    if certfile is not None:
        try:
            context.load_cert_chain(certfile, keyfile)
        except OSError as exc:
            raise ImproperlyConfigured(
                setting,
                f"{prefix}certfile {certfile}, {prefix}keyfile {keyfile}: cannot load: {exc}",
            ) from exc
    if ciphers is not None:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise ImproperlyConfigured(setting, f"{prefix}ciphers {ciphers!r}: {exc}") from exc
    ca = f"the CA file {ca_certs}" if ca_certs is not None else _SYSTEM_CAS
    return TlsSettings(context, server_hostname, setting, ca, certfile)


def _str(options: Mapping[str, object], key: str, setting: str, prefix: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if hasattr(value, "__fspath__"):  # a pathlib.Path for a file
        return str(value)
    raise ImproperlyConfigured(setting, f"{prefix}{key} must be a non-empty string, got {value!r}")
