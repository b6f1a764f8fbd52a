"""taskq-redis over TLS against real servers: ``rediss://`` and a Sentinel that speaks TLS.

A throwaway CA and a server certificate (for ``localhost`` and ``127.0.0.1``) are made with the
``openssl`` command once per session (``taskq_testing.tls``), as an operator would make them; a
second, unrelated CA plays the wrong one. A private redis-server listens only on a TLS port
(``--port 0``), and a Sentinel, also TLS-only, watches it as ``mymaster`` over TLS
(``tls-replication yes``). The servers do not ask for client certificates (``tls-auth-clients
no``): what is proven here is that taskq verifies the server, through its own URL and option
grammar.

The round trips publish, fetch and ack a message through the transport and store, read and
wait for a result through the backend (isolated from each other by unique names). With the
wrong CA, for the master or for the Sentinels, or a name the certificate does not hold, the
first handshake raises ImproperlyConfigured naming the setting, the CA file and the reason: no
retry, no reconnecting with backoff, and a worker stops at start. That holds for ``get()`` too,
which waits on the backend's pub/sub connection, and for every thread waiting on it.
Without openssl or redis-server the tests skip, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from taskq import TaskQ
from taskq.contracts import BackendOptions, TransportError
from taskq.exceptions import ImproperlyConfigured
from taskq_protocol import ResultMeta
from taskq_redis.backend import RedisBackend
from taskq_redis.connection import client_from_url
from taskq_redis.transport import RedisTransport
from taskq_testing.factories import make_meta
from taskq_testing.plugin import server_missing
from taskq_testing.servers import ServerProcess, free_port
from taskq_testing.tls import ClosingListener, CountingProxy, TLSFiles, make_tls_files
from taskq_testing.waiting import wait_until

MASTER_NAME = "mymaster"


# -- certificates and servers ------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _tls_client(port: int, files: TLSFiles) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=str(files.ca),
        socket_timeout=1,
        socket_connect_timeout=1,
    )


@pytest.fixture(scope="session")
def tls_master(
    _redis_binary: str | None, tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The TLS port of a private redis-server that has no plain-text port."""
    if _redis_binary is None:
        server_missing("redis-server", "the binary is not installed (apt-get install redis-server)")
    directory = tmp_path_factory.mktemp("redis-tls")
    port = free_port()
    argv = [
        _redis_binary,
        "--bind", "127.0.0.1",
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", str(tls_files.server_cert),
        "--tls-key-file", str(tls_files.server_key),
        "--tls-ca-cert-file", str(tls_files.ca),
        "--tls-auth-clients", "no",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
    ]  # fmt: skip

    def answers() -> bool:
        client = _tls_client(port, tls_files)
        try:
            return bool(client.ping())
        finally:
            client.close()

    with ServerProcess(argv, answers, log_path=directory / "redis.log"):
        yield port


@pytest.fixture(scope="session")
def tls_sentinel(
    _redis_binary: str | None,
    tls_master: int,
    tls_files: TLSFiles,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[int]:
    """The TLS port of a Sentinel (no plain-text port) watching ``tls_master`` over TLS."""
    assert _redis_binary is not None  # tls_master stopped the test otherwise
    directory = tmp_path_factory.mktemp("sentinel-tls")
    port = free_port()
    config = directory / "sentinel.conf"  # Sentinel rewrites its file: it must be its own
    config.write_text(
        f"bind 127.0.0.1\nport 0\ntls-port {port}\ndir {directory}\n"
        f"tls-cert-file {tls_files.server_cert}\ntls-key-file {tls_files.server_key}\n"
        f"tls-ca-cert-file {tls_files.ca}\ntls-auth-clients no\n"
        # Sentinel reaches the master (and would reach replicas) over TLS only with this.
        "tls-replication yes\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {tls_master} 1\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} 5000\n"
    )

    def answers() -> bool:
        client = _tls_client(port, tls_files)
        try:
            return bool(client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME))
        finally:
            client.close()

    argv = [_redis_binary, str(config), "--sentinel"]
    with ServerProcess(argv, answers, log_path=directory / "sentinel.log"):
        yield port


# -- round trips -------------------------------------------------------------------------------


def _backend_round_trip(url: str, options: dict[str, Any]) -> None:
    """Store and read a result; then wait for one that another backend stores meanwhile, which
    takes the waiter's own pub/sub connection (made apart from the pool) over TLS as well."""
    backend_options = BackendOptions(transport_options=options)
    waiter, writer = RedisBackend(url, backend_options), RedisBackend(url, backend_options)
    try:
        stored = make_meta(result="stored first")
        writer.store(stored)
        assert waiter.get(stored.task_id) == stored

        later = make_meta(result="stored while waiting")
        got: dict[str, ResultMeta] = {}
        waiting = threading.Thread(target=lambda: got.update(waiter.wait([later.task_id], 10)))
        waiting.start()
        writer.store(later)
        waiting.join(15)
        assert got == {later.task_id: later}
    finally:
        waiter.close()
        writer.close()


def _query(**settings: object) -> str:
    return "&".join(f"{key}={quote(str(value), safe='')}" for key, value in settings.items())


def test_rediss_with_the_ca_in_the_query_string(
    round_trip: Any, tls_master: int, tls_files: TLSFiles, unique_name: str
) -> None:
    query = _query(ssl_cert_reqs="required", ssl_ca_certs=tls_files.ca)
    url = f"rediss://localhost:{tls_master}/1?{query}"
    round_trip(url, {}, unique_name)
    _backend_round_trip(url, {})


@pytest.mark.parametrize("key", ["ssl", "broker_use_ssl", "redis_backend_use_ssl"])
def test_rediss_with_the_ca_in_the_options(
    round_trip: Any, key: str, tls_master: int, tls_files: TLSFiles, unique_name: str
) -> None:
    options = {key: {"ssl_cert_reqs": "CERT_REQUIRED", "ssl_ca_certs": str(tls_files.ca)}}
    url = f"rediss://127.0.0.1:{tls_master}/2"
    round_trip(url, options, unique_name)
    _backend_round_trip(url, options)


def _sentinel_options(sentinel_ca: Path, master_ca: Path) -> dict[str, Any]:
    """The README's Sentinel options: the Sentinels' TLS in ``sentinel_kwargs`` (redis-py's
    arguments, passed on as kombu passes them), the master's under ``ssl``."""
    return {
        "master_name": MASTER_NAME,
        "sentinel_kwargs": {
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": str(sentinel_ca),
        },
        "ssl": {"ssl_cert_reqs": "required", "ssl_ca_certs": str(master_ca)},
    }


def test_sentinel_and_master_over_tls(
    round_trip: Any, tls_sentinel: int, tls_master: int, tls_files: TLSFiles, unique_name: str
) -> None:
    url = f"sentinel://127.0.0.1:{tls_sentinel}/3"
    options = _sentinel_options(tls_files.ca, tls_files.ca)
    round_trip(url, options, unique_name)
    _backend_round_trip(url, options)
    # The master was found through the Sentinel: its TLS port, the only one it has.
    client = client_from_url(url, options)
    pool: Any = client.connection_pool  # a SentinelConnectionPool; redis-py leaves it untyped
    try:
        assert pool.get_master_address() == ("127.0.0.1", tls_master)
        assert client.ping()
    finally:
        client.close()


# -- the wrong CA ------------------------------------------------------------------------------


def _fails_at_once(call: Callable[[], object], setting: str, *names: str) -> ImproperlyConfigured:
    """``call()`` raises ImproperlyConfigured naming ``setting`` and ``names`` (the CA file, the
    reason)."""
    with pytest.raises(ImproperlyConfigured) as raised:
        call()
    error = raised.value
    assert error.setting == setting
    for name in names:
        assert name in str(error)
    return error


def _both_fail_at_once(
    url: str,
    options: dict[str, Any],
    proxy: CountingProxy,
    settings: tuple[str, str],
    *names: str,
) -> None:
    """The transport's connect, then the backend's first read, each raise ImproperlyConfigured
    naming its setting (``settings``: the transport's, the backend's) and ``names``, after one
    connection through ``proxy`` each."""
    transport = RedisTransport(url, options)
    try:
        _fails_at_once(transport.connect, settings[0], *names)
    finally:
        transport.close()
    assert proxy.accepted == 1
    backend = RedisBackend(url, BackendOptions(transport_options=options))
    try:
        _fails_at_once(lambda: backend.get("no-such-task"), settings[1], *names)
    finally:
        backend.close()
    assert proxy.accepted == 2


@pytest.fixture
def master_proxy(tls_master: int) -> Iterator[CountingProxy]:
    proxy = CountingProxy(tls_master)
    yield proxy
    proxy.close()


@pytest.fixture
def sentinel_proxy(tls_sentinel: int) -> Iterator[CountingProxy]:
    proxy = CountingProxy(tls_sentinel)
    yield proxy
    proxy.close()


#: OpenSSL's reason for these servers' certificates against the wrong CA (the chain they send
#: ends in their own CA, which the wrong one does not know).
_UNKNOWN_CA = "self-signed certificate in certificate chain"


def test_rediss_with_the_wrong_ca_in_the_url(
    master_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """The CA named in the URL's query string: the transport names ``broker_url``, the backend
    ``result_backend``, each with the CA file, once."""
    query = _query(ssl_cert_reqs="required", ssl_ca_certs=tls_files.wrong_ca)
    url = f"rediss://localhost:{master_proxy.port}/0?{query}"
    settings = ("broker_url", "result_backend")
    _both_fail_at_once(url, {}, master_proxy, settings, str(tls_files.wrong_ca), _UNKNOWN_CA)


def test_sentinel_with_the_wrong_ca_for_the_master_in_the_url(
    sentinel_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """A ``sentinel://`` URL's query string holds the master's TLS options: the URL's setting
    and the CA file it names."""
    query = _query(ssl_cert_reqs="required", ssl_ca_certs=tls_files.wrong_ca)
    url = f"sentinel://127.0.0.1:{sentinel_proxy.port}?{query}"
    options = _sentinel_options(tls_files.ca, tls_files.ca)
    del options["ssl"]  # the master's TLS options are the URL's alone
    # Once each at the Sentinel, which verified; the master did not.
    settings = ("broker_url", "result_backend")
    _both_fail_at_once(url, options, sentinel_proxy, settings, str(tls_files.wrong_ca), _UNKNOWN_CA)


@pytest.mark.parametrize("key", ["ssl", "broker_use_ssl"])
def test_rediss_with_the_wrong_ca_in_the_broker_options(
    key: str, master_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    options = {key: {"ssl_cert_reqs": "required", "ssl_ca_certs": str(tls_files.wrong_ca)}}
    transport = RedisTransport(f"rediss://127.0.0.1:{master_proxy.port}/0", options)
    try:
        error = _fails_at_once(
            transport.connect, "broker_use_ssl", str(tls_files.wrong_ca), _UNKNOWN_CA
        )
    finally:
        transport.close()
    assert master_proxy.accepted == 1
    assert isinstance(error.__cause__, redis.ConnectionError)


@pytest.mark.parametrize("key", ["ssl", "redis_backend_use_ssl"])
def test_the_backend_does_not_retry_the_wrong_ca(
    key: str, master_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """The default retry_policy (20 retries, a second apart) is not spent on a certificate:
    the first failed handshake is the answer, for a write as for a read."""
    options = {key: {"ssl_ca_certs": str(tls_files.wrong_ca)}}
    backend = RedisBackend(
        f"rediss://127.0.0.1:{master_proxy.port}/0", BackendOptions(transport_options=options)
    )
    assert backend.retry.max_retries == 20
    expected = ("redis_backend_use_ssl", str(tls_files.wrong_ca), _UNKNOWN_CA)
    try:
        _fails_at_once(lambda: backend.store(make_meta(result="never stored")), *expected)
        assert master_proxy.accepted == 1
        _fails_at_once(lambda: backend.wait(["one", "two"], 5), *expected)
        assert master_proxy.accepted == 2
    finally:
        backend.close()


@pytest.mark.parametrize("where", ["url", "redis_backend_use_ssl"])
def test_get_does_not_retry_the_wrong_ca(
    where: str, master_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """``result.get()`` waits for one task on the backend's pub/sub connection, which it opens
    itself: its handshake fails the same way, once, rather than reconnecting until the
    timeout."""
    tls = {"ssl_cert_reqs": "required", "ssl_ca_certs": str(tls_files.wrong_ca)}
    if where == "url":
        url, options = f"rediss://localhost:{master_proxy.port}/0?{_query(**tls)}", {}
        setting = "result_backend"
    else:
        url, options = f"rediss://localhost:{master_proxy.port}/0", {where: tls}
        setting = where
    app = TaskQ("tls-get", broker="memory://", backend=url, set_as_current=False)
    app.conf.result_backend_transport_options = options
    try:
        error = _fails_at_once(
            lambda: app.AsyncResult("no-such-task").get(timeout=10),
            setting,
            str(tls_files.wrong_ca),
            _UNKNOWN_CA,
        )
    finally:
        app.close()
    assert master_proxy.accepted == 1
    assert isinstance(error.__cause__, redis.ConnectionError)


def test_every_waiting_thread_gets_the_certificate_error(
    tls_master: int, tls_files: TLSFiles
) -> None:
    """Threads waiting on one backend share its pub/sub connection, and one of them connects:
    the others, asleep meanwhile, raise the same error, and nobody connects again."""
    hold = threading.Event()
    proxy = CountingProxy(tls_master, hold)
    options = {"redis_backend_use_ssl": {"ssl_ca_certs": str(tls_files.wrong_ca)}}
    backend = RedisBackend(
        f"rediss://127.0.0.1:{proxy.port}/0", BackendOptions(transport_options=options)
    )
    errors: list[ImproperlyConfigured] = []

    def wait(task_id: str) -> None:
        try:
            backend.wait([task_id], 10)
        except ImproperlyConfigured as error:
            errors.append(error)

    def subscribed() -> int:
        subscriber = backend._subscriber  # pyright: ignore[reportPrivateUsage]
        return 0 if subscriber is None else len(subscriber._interest)  # pyright: ignore[reportPrivateUsage]

    waiting = [threading.Thread(target=wait, args=(f"task-{i}",)) for i in range(3)]
    try:
        for thread in waiting:
            thread.start()
        # One thread's handshake waits in the proxy until every thread is subscribed.
        wait_until(lambda: subscribed() == 3, 10.0, message="every thread subscribed")
        hold.set()
        for thread in waiting:
            thread.join(30)
    finally:
        hold.set()
        backend.close()
        proxy.close()
    assert len(errors) == 3
    for error in errors:
        assert error.setting == "redis_backend_use_ssl"
        assert str(tls_files.wrong_ca) in str(error)
    assert proxy.accepted == 1


def test_a_hostname_the_certificate_does_not_hold(
    master_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """The right CA, but the name connected to is not among the certificate's."""
    name = _other_name_of_localhost()
    options = {"ssl": {"ssl_ca_certs": str(tls_files.ca)}}
    transport = RedisTransport(f"rediss://{name}:{master_proxy.port}/0", options)
    try:
        error = _fails_at_once(transport.connect, "broker_use_ssl", "Hostname mismatch", name)
    finally:
        transport.close()
    assert "ssl_check_hostname" in str(error)
    assert master_proxy.accepted == 1


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


def test_sentinel_with_the_wrong_ca_for_the_master(
    sentinel_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """The Sentinel answers; the master it names does not verify. (The master's address comes
    from the Sentinel, so its connections are not counted here; the Sentinel is asked once.)"""
    url = f"sentinel://127.0.0.1:{sentinel_proxy.port}"
    options = _sentinel_options(tls_files.ca, tls_files.wrong_ca)
    settings = ("broker_use_ssl", "redis_backend_use_ssl")
    _both_fail_at_once(url, options, sentinel_proxy, settings, str(tls_files.wrong_ca), _UNKNOWN_CA)


def test_sentinel_with_the_wrong_ca_for_the_sentinels(
    sentinel_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """redis-py's Sentinel keeps only the type of each Sentinel's error ("No master found");
    the transport asks the Sentinel once more to tell the certificate from a Sentinel that is
    down, and names it."""
    url = f"sentinel://127.0.0.1:{sentinel_proxy.port}"
    transport = RedisTransport(url, _sentinel_options(tls_files.wrong_ca, tls_files.ca))
    try:
        _fails_at_once(
            transport.connect,
            "broker_transport_options",
            "sentinel_kwargs",
            f"127.0.0.1:{sentinel_proxy.port}",
            str(tls_files.wrong_ca),
            _UNKNOWN_CA,
        )
    finally:
        transport.close()
    assert sentinel_proxy.accepted == 2  # discovery, then the question why


@pytest.mark.parametrize("call", ["get", "store"])
def test_the_backend_does_not_retry_the_wrong_ca_for_the_sentinels(
    call: str, sentinel_proxy: CountingProxy, tls_files: TLSFiles
) -> None:
    """The backend, like the transport, asks the Sentinel once more why it found no master,
    and raises at once, for a read as for a write: not after its retry_policy's 20 retries."""
    url = f"sentinel://127.0.0.1:{sentinel_proxy.port}"
    options = _sentinel_options(tls_files.wrong_ca, tls_files.ca)
    backend = RedisBackend(url, BackendOptions(transport_options=options))
    assert backend.retry.max_retries == 20
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: backend.get("no-such-task"),
        "store": lambda: backend.store(make_meta(result="never stored")),
    }
    try:
        _fails_at_once(
            calls[call],
            "result_backend_transport_options",
            "sentinel_kwargs",
            f"127.0.0.1:{sentinel_proxy.port}",
            str(tls_files.wrong_ca),
            _UNKNOWN_CA,
        )
    finally:
        backend.close()
    assert sentinel_proxy.accepted == 2  # discovery, then the question why


def test_a_lost_connection_is_still_a_transport_error() -> None:
    """Only a certificate is configuration: nothing listening stays a TransportError, which
    the worker retries."""
    transport = RedisTransport(f"rediss://127.0.0.1:{free_port()}/0", {})
    try:
        with pytest.raises(TransportError):
            transport.connect()
    finally:
        transport.close()


def test_the_worker_stops_at_start_naming_the_setting(
    tls_master: int, tls_files: TLSFiles, tmp_path: Path
) -> None:
    """``taskq worker`` with the wrong CA exits with status 1 and the setting on stderr, rather
    than reconnecting with backoff for ever (broker_connection_retry_on_startup is on)."""
    url = f"rediss://localhost:{tls_master}/0?{_query(ssl_ca_certs=tls_files.wrong_ca)}"
    (tmp_path / "tls_app.py").write_text(
        "from taskq import TaskQ\n"
        f"app = TaskQ('tls_app', broker={url!r})\n"
        "app.conf.update(broker_connection_retry_on_startup=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "taskq_cli", "-A", "tls_app", "worker", "-P", "solo"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "broker_url" in done.stderr
    assert str(tls_files.wrong_ca) in done.stderr
    assert "Trying again" not in done.stderr


def test_a_sentinel_that_fails_is_asked_once_then_the_next(
    round_trip: Any, tls_sentinel: int, tls_master: int, tls_files: TLSFiles, unique_name: str
) -> None:
    """The next Sentinel in the URL is the retry: redis-py alone asks a failing Sentinel four
    times, backing off between, before it moves on."""
    failing = ClosingListener()
    try:
        url = f"sentinel://127.0.0.1:{failing.port};sentinel://127.0.0.1:{tls_sentinel}"
        round_trip(url, _sentinel_options(tls_files.ca, tls_files.ca), unique_name)
    finally:
        failing.close()
    assert failing.accepted == 1
