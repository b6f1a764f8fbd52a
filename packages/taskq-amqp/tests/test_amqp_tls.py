"""taskq-amqp over TLS (``amqps://``) against a real RabbitMQ that speaks only TLS.

The node (``tls_rabbitmq.py``) verifies clients too, so every round trip here proves that
the CA, the client certificate and its key reach the handshake, through each way Celery's
settings give them: the ``broker_use_ssl`` mapping (py-amqp's keys), an ``ssl.SSLContext``,
and kombu's ``ssl_*`` keys in the URL's query string. A real ``taskq worker`` runs a task
over TLS.

A certificate that fails (the wrong CA, a name the certificate does not hold, no client
certificate) raises ImproperlyConfigured at the first handshake, naming the setting, the CA
file and OpenSSL's reason: one connection attempt, no reconnecting with backoff, and a
worker stops at start.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from taskq import TaskQ
from taskq.contracts import QueueSpec, TransportError
from taskq.exceptions import ImproperlyConfigured
from taskq_amqp.consumer import ConsumerLoop
from taskq_amqp.transport import AmqpTransport
from taskq_amqp.urls import parse_settings
from taskq_testing.factories import make_envelope
from taskq_testing.servers import free_port
from taskq_testing.tls import CountingProxy, TLSFiles
from taskq_testing.worker_processes import WorkerProcess, answers_ping, node_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tls_rabbitmq import TlsRabbit, tls_files, tls_rabbit

__all__ = ["tls_files", "tls_rabbit"]  # the fixtures, found by pytest in this module

#: OpenSSL's reason for the node's certificate against the wrong CA (the chain it sends ends
#: in its own CA, which the wrong one does not know).
UNKNOWN_CA = "self-signed certificate in certificate chain"


def _query(**settings: object) -> str:
    return "&".join(f"{key}={quote(str(value), safe='')}" for key, value in settings.items())


def _round_trip(url: str, options: dict[str, Any], queue: str) -> None:
    """Declare, publish, fetch and ack one message through a transport built from ``url``
    and ``options``, as a worker's would be."""
    transport = AmqpTransport(url, options)
    assert transport.settings.ssl
    transport.connect()
    try:
        transport.declare_queue(QueueSpec(queue, routing_key=queue, arguments={"x-expires": 60000}))
        envelope = make_envelope(queue)
        transport.publish(queue, envelope)
        [delivery] = transport.fetch([queue], 1, 10.0)
        assert delivery.envelope.body == envelope.body
        assert delivery.envelope.headers["id"] == envelope.headers["id"]
        transport.ack([delivery])
        transport.flush()
        assert transport.queue_length(queue) == 0
    finally:
        transport.close()


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_amqps_with_broker_use_ssl(
    host: str, tls_rabbit: TlsRabbit, tls_files: TLSFiles, unique_name: str
) -> None:
    """Celery's ``broker_use_ssl`` mapping, passed to the transport as the app passes it; the
    certificate's names (DNS localhost, IP 127.0.0.1) are checked against the URL's host."""
    app = TaskQ("tls_mapping", broker=tls_rabbit.url(host))
    app.conf.broker_use_ssl = tls_files.broker_use_ssl()
    _round_trip(app.broker_url, app.transport_options(), unique_name)


def test_amqps_with_an_ssl_context(
    tls_rabbit: TlsRabbit, tls_files: TLSFiles, unique_name: str
) -> None:
    """The context itself wraps the socket (py-amqp alone ignores an SSLContext and checks
    against the system's CAs, which fails here)."""
    context = ssl.create_default_context(cafile=str(tls_files.ca))
    context.load_cert_chain(tls_files.client_cert, tls_files.client_key)
    _round_trip(tls_rabbit.url(), {"ssl": context}, unique_name)


def test_amqps_with_the_query_string(
    tls_rabbit: TlsRabbit, tls_files: TLSFiles, unique_name: str
) -> None:
    query = _query(
        ssl_cert_reqs="required",
        ssl_ca_certs=tls_files.ca,
        ssl_certfile=tls_files.client_cert,
        ssl_keyfile=tls_files.client_key,
    )
    _round_trip(tls_rabbit.url(query=query), {}, unique_name)


def test_server_hostname_names_what_the_certificate_holds(
    tls_rabbit: TlsRabbit, tls_files: TLSFiles, unique_name: str
) -> None:
    """Connected by a name the certificate does not hold, ``server_hostname`` says which name
    to check (and send); ``check_hostname=False`` skips the check."""
    other = _other_name_of_localhost()
    named = {**tls_files.broker_use_ssl(), "server_hostname": "localhost"}
    _round_trip(tls_rabbit.url(other), {"ssl": named}, unique_name)
    unchecked = {**tls_files.broker_use_ssl(), "check_hostname": False}
    _round_trip(tls_rabbit.url(other), {"ssl": unchecked}, unique_name)


def test_a_worker_runs_a_task_over_tls(
    tls_rabbit: TlsRabbit,
    tls_files: TLSFiles,
    results_redis_url: str,
    unique_name: str,
    tmp_path: Path,
) -> None:
    """A ``taskq worker`` on ``amqps://`` answers a ping (remote control over TLS) and runs a
    task whose result comes back."""
    url = tls_rabbit.url()
    _write_app(tmp_path, url, tls_files.broker_use_ssl(), results_redis_url)
    client = TaskQ("tls_client", broker=url, backend=results_redis_url)
    client.conf.broker_use_ssl = tls_files.broker_use_ssl()
    node = node_name("taskq-tls")
    worker = WorkerProcess(
        _worker_argv("-P", "threads", "-c", "2", "-Q", unique_name, "-n", node),
        _worker_env(tmp_path),
        tmp_path / "worker.log",
        node,
    )
    try:
        worker.wait_ready(answers_ping(client))
        result = client.send_task("tls.add", (2, 3), queue=unique_name)
        assert result.get(timeout=30) == 5, worker.tail()
    finally:
        worker.stop()
        client.close()


def _write_app(directory: Path, url: str, tls: dict[str, Any], backend: str | None) -> None:
    (directory / "tls_app.py").write_text(
        "from taskq import TaskQ\n"
        f"app = TaskQ('tls_app', broker={url!r}, backend={backend!r})\n"
        "app.conf.update(broker_connection_retry_on_startup=True)\n"
        f"app.conf.broker_use_ssl = {dict(tls, cert_reqs='required')!r}\n"
        "@app.task(name='tls.add')\n"
        "def add(x, y):\n"
        "    return x + y\n"
    )


def _worker_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "taskq_cli", "-A", "tls_app", "worker", "-l", "info", *args]


def _worker_env(directory: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(directory), "PYTHONUNBUFFERED": "1"}


# -- certificates that fail ----------------------------------------------------------------------


@pytest.fixture
def proxy(tls_rabbit: TlsRabbit) -> Iterator[CountingProxy]:
    proxy = CountingProxy(tls_rabbit.port)
    yield proxy
    proxy.close()


def _fails_at_once(
    url: str, options: dict[str, Any], proxy: CountingProxy, setting: str, *names: str
) -> ImproperlyConfigured:
    """Connecting raises ImproperlyConfigured naming ``setting`` and ``names``, after one
    connection attempt (the default publish_retry_timeout, 60 s of reconnecting, is not
    spent on it)."""
    transport = AmqpTransport(url, options)
    assert transport.settings.publish_retry_timeout == 60
    try:
        with pytest.raises(ImproperlyConfigured) as raised:
            transport.connect()
    finally:
        transport.close()
    error = raised.value
    assert error.setting == setting
    for name in names:
        assert name in str(error)
    assert proxy.accepted == 1
    return error


def test_the_wrong_ca_in_broker_use_ssl(proxy: CountingProxy, tls_files: TLSFiles) -> None:
    options = {"ssl": tls_files.broker_use_ssl(tls_files.wrong_ca)}
    error = _fails_at_once(
        f"amqps://localhost:{proxy.port}//",
        options,
        proxy,
        "broker_use_ssl",
        str(tls_files.wrong_ca),
        UNKNOWN_CA,
    )
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)


def test_the_wrong_ca_in_the_query_string(proxy: CountingProxy, tls_files: TLSFiles) -> None:
    query = _query(
        ssl_ca_certs=tls_files.wrong_ca,
        ssl_certfile=tls_files.client_cert,
        ssl_keyfile=tls_files.client_key,
    )
    error = _fails_at_once(
        f"amqps://localhost:{proxy.port}//?{query}",
        {},
        proxy,
        "broker_url",
        str(tls_files.wrong_ca),
        UNKNOWN_CA,
    )
    assert "ssl_ca_certs" in str(error)


def test_the_wrong_ca_in_an_ssl_context(proxy: CountingProxy, tls_files: TLSFiles) -> None:
    context = ssl.create_default_context(cafile=str(tls_files.wrong_ca))
    context.load_cert_chain(tls_files.client_cert, tls_files.client_key)
    _fails_at_once(
        f"amqps://localhost:{proxy.port}//",
        {"ssl": context},
        proxy,
        "broker_use_ssl",
        "ssl.SSLContext",
        UNKNOWN_CA,
    )


def test_amqps_without_a_ca_checks_the_system_cas(
    proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """``amqps://`` alone (Celery's ``broker_use_ssl = True``) verifies against the system's
    CAs, which did not sign this node's certificate."""
    _fails_at_once(
        f"amqps://localhost:{proxy.port}//",
        {"ssl": True},
        proxy,
        "broker_use_ssl",
        "system's default CAs",
        UNKNOWN_CA,
    )


def test_a_hostname_the_certificate_does_not_hold(
    proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    name = _other_name_of_localhost()
    error = _fails_at_once(
        f"amqps://{name}:{proxy.port}//",
        {"ssl": tls_files.broker_use_ssl()},
        proxy,
        "broker_use_ssl",
        "Hostname mismatch",
        name,
    )
    assert "server_hostname" in str(error)


def test_no_client_certificate(proxy: CountingProxy, tls_files: TLSFiles) -> None:
    """The node asks every client for a certificate: without one, it refuses the handshake
    (TLS 1.3 says so after the client's side of it is done, on the first read)."""
    options = {"ssl": {"ca_certs": str(tls_files.ca)}}
    error = _fails_at_once(
        f"amqps://localhost:{proxy.port}//",
        options,
        proxy,
        "broker_use_ssl",
        "refused the TLS client certificate",
        "no client certificate",
    )
    assert isinstance(error.__cause__, ssl.SSLError)


def test_the_consuming_connection_stops_on_a_certificate_that_fails(
    proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """The consuming connection's I/O thread connects (and reconnects) by itself: a
    certificate that fails there stops it after one attempt, and what is asked of it raises
    the configuration error (a worker's next fetch stops the worker) instead of reconnecting
    for ever."""
    options = {"ssl": tls_files.broker_use_ssl(tls_files.wrong_ca)}
    loop = ConsumerLoop(
        parse_settings(f"amqps://localhost:{proxy.port}//", options), lambda _name: None
    )
    try:
        with pytest.raises(ImproperlyConfigured) as raised:
            loop.call(lambda: None, timeout=30)
        assert raised.value.setting == "broker_use_ssl"
        assert str(tls_files.wrong_ca) in str(raised.value)
        loop._thread.join(30)  # pyright: ignore[reportPrivateUsage]
        assert not loop._thread.is_alive()  # pyright: ignore[reportPrivateUsage]
        with pytest.raises(ImproperlyConfigured):
            loop.call(lambda: None, timeout=30)  # asked again: the same answer
        assert proxy.accepted == 1
    finally:
        loop.close()


def test_nothing_listening_is_still_a_transport_error(tls_files: TLSFiles) -> None:
    """Only a certificate is configuration: a refused connection stays a TransportError,
    which a worker retries."""
    options = {"ssl": tls_files.broker_use_ssl(), "publish_retry_timeout": 0.2}
    transport = AmqpTransport(f"amqps://localhost:{free_port()}//", options)
    try:
        with pytest.raises(TransportError):
            transport.connect()
    finally:
        transport.close()


def test_the_worker_stops_at_start_naming_the_setting(
    tls_rabbit: TlsRabbit, tls_files: TLSFiles, tmp_path: Path
) -> None:
    """``taskq worker`` with the wrong CA exits with status 1 and the setting on stderr, rather
    than reconnecting with backoff for ever (broker_connection_retry_on_startup is on)."""
    _write_app(tmp_path, tls_rabbit.url(), tls_files.broker_use_ssl(tls_files.wrong_ca), None)
    done = subprocess.run(
        _worker_argv("-P", "solo"),
        cwd=tmp_path,
        env=_worker_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "broker_use_ssl" in done.stderr
    assert str(tls_files.wrong_ca) in done.stderr
    assert UNKNOWN_CA in done.stderr
    assert "Trying again" not in done.stderr


# -- settings read when the transport is built (no server) ----------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "setting", "words"),
    [
        ("amqps://h//", {"ssl": {"ca_cert": "x"}}, "broker_use_ssl", ["unknown", "ca_cert"]),
        ("amqps://h//?ssl_ca_cert=x", {}, "broker_url", ["unknown", "ssl_ca_cert"]),
        ("amqps://h//", {"ssl": {"ca_certs": "/no/such.pem"}}, "broker_use_ssl", ["/no/such"]),
        ("amqps://h//?ssl_ca_certs=/no/such.pem", {}, "broker_url", ["ssl_ca_certs"]),
        ("amqps://h//", {"ssl": {"cert_reqs": "sometimes"}}, "broker_use_ssl", ["cert_reqs"]),
        ("amqps://h//", {"ssl": {"keyfile": "k.pem"}}, "broker_use_ssl", ["certfile"]),
        ("amqps://h//", {"ssl": "yes"}, "broker_use_ssl", ["mapping"]),
        ("amqp://h//?ssl=maybe", {}, "broker_url", ["ssl must be true or false"]),
        (
            "amqps://h//?ssl_check_hostname=sometimes",
            {},
            "broker_url",
            ["ssl_check_hostname must be true or false"],
        ),
        (
            "amqps://h//?ssl_ca_certs=x",
            {"ssl": ssl.create_default_context()},
            "broker_url",
            ["SSLContext"],
        ),
    ],
)
def test_bad_tls_settings_fail_when_the_transport_is_built(
    url: str, options: dict[str, Any], setting: str, words: list[str]
) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        AmqpTransport(url, options)
    assert raised.value.setting == setting
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize(
    ("url", "options", "tls"),
    [
        ("amqp://h//", {}, False),
        ("amqp://h//", {"ssl": False}, False),
        ("amqp://h//", {"ssl": True}, True),
        ("amqp://h//?ssl=true", {}, True),
        ("amqp://h//?ssl=on", {}, True),
        ("amqp://h//?ssl=no", {}, False),
        ("amqp://h//", {"ssl": {"cert_reqs": "none"}}, True),
        ("amqps://h//", {}, True),
    ],
)
def test_what_turns_tls_on(url: str, options: dict[str, Any], tls: bool) -> None:
    assert AmqpTransport(url, options).settings.ssl is tls


def test_cert_reqs_none_skips_verification_and_the_name() -> None:
    settings = AmqpTransport("amqps://h//", {"ssl": {"cert_reqs": "none"}}).settings
    assert settings.tls is not None
    assert settings.tls.context.verify_mode == ssl.CERT_NONE
    assert not settings.tls.context.check_hostname


def _other_name_of_localhost() -> str:
    """A name that reaches 127.0.0.1 but is neither ``localhost`` nor ``127.0.0.1`` (the
    certificate's names): this machine's own name, or ``127.1`` (inet_aton's short form)."""
    hostname = socket.gethostname()
    try:
        if hostname != "localhost" and socket.gethostbyname(hostname) == "127.0.0.1":
            return hostname
    except OSError:
        pass
    return "127.1"
