"""Every URL form against a real server: TLS, a Unix socket, Sentinel; bad URLs and options.

Debian's redis-server 7.0 is built with TLS (``--tls-port``), so the TLS tests run against a
private server with a CA and certificates generated here.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from taskq.contracts import TransportError
from taskq.exceptions import ImproperlyConfigured
from taskq_redis.connection import client_from_url, parse_redis_url
from taskq_redis.transport import RedisTransport
from taskq_testing.servers import free_port

StartRedis = Callable[..., Any]


# -- TLS -------------------------------------------------------------------------------------


class Certificates:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "taskq test CA")])
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca = self._write("ca.pem", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server_cert, self.server_key = self._leaf("server", now)
        self.client_cert, self.client_key = self._leaf("client", now)

    def _leaf(self, name: str, now: datetime.datetime) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_path = self._write(f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM))
        key_path = self._write(
            f"{name}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
        )
        return cert_path, key_path

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path)


@pytest.fixture
def tls_port(start_redis: StartRedis, certificates: Certificates) -> int:
    """A private redis-server with a TLS port that asks for (but does not need) a client cert."""
    port = free_port()
    start_redis(
        "--tls-port", str(port),
        "--tls-cert-file", str(certificates.server_cert),
        "--tls-key-file", str(certificates.server_key),
        "--tls-ca-cert-file", str(certificates.ca),
        "--tls-auth-clients", "optional",
    )  # fmt: skip
    return port


def test_rediss_with_options_verifies_the_server(
    round_trip: Any, tls_port: int, certificates: Certificates, unique_name: str
) -> None:
    options = {
        "ssl": {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_ca_certs": str(certificates.ca),
            "ssl_certfile": str(certificates.client_cert),
            "ssl_keyfile": str(certificates.client_key),
        }
    }
    round_trip(f"rediss://localhost:{tls_port}/0", options, unique_name)


def test_rediss_with_options_in_the_query_string(
    round_trip: Any, tls_port: int, certificates: Certificates, unique_name: str
) -> None:
    query = "&".join(
        f"{key}={quote(str(value), safe='')}"
        for key, value in {
            "ssl_cert_reqs": "required",
            "ssl_ca_certs": certificates.ca,
            "ssl_certfile": certificates.client_cert,
            "ssl_keyfile": certificates.client_key,
        }.items()
    )
    round_trip(f"rediss://localhost:{tls_port}/3?{query}", {}, unique_name)


def test_celerys_broker_use_ssl_mapping_is_accepted(
    round_trip: Any, tls_port: int, certificates: Certificates, unique_name: str
) -> None:
    options = {
        "broker_use_ssl": {"ssl_cert_reqs": "CERT_REQUIRED", "ssl_ca_certs": str(certificates.ca)}
    }
    round_trip(f"rediss://127.0.0.1:{tls_port}", options, unique_name)


def test_rediss_refuses_a_server_it_cannot_verify(tls_port: int) -> None:
    transport = RedisTransport(f"rediss://localhost:{tls_port}/0", {})
    with pytest.raises(ImproperlyConfigured, match=r"broker_use_ssl: .* system's default CAs"):
        transport.connect()
    transport.close()


def test_rediss_without_verification_as_kombu_does_by_default(
    round_trip: Any, tls_port: int, unique_name: str
) -> None:
    round_trip(f"rediss://localhost:{tls_port}/0?ssl_cert_reqs=none", {}, unique_name)


# -- Unix socket -------------------------------------------------------------------------------


def test_redis_socket_url_with_virtual_host_and_db(
    round_trip: Any, start_redis: StartRedis, tmp_path: Path, unique_name: str
) -> None:
    socket_path = tmp_path / "redis.sock"
    start_redis("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    round_trip(f"redis+socket://{socket_path}?virtual_host=2", {}, unique_name)
    round_trip(f"redis+socket://{socket_path}?db=4", {"socket_timeout": 3}, unique_name)
    client = client_from_url(f"redis+socket://{socket_path}?virtual_host=2", {})
    assert client.connection_pool.connection_kwargs["db"] == 2
    assert client.ping()
    client.close()


# -- Sentinel ----------------------------------------------------------------------------------


def test_sentinel_finds_the_master(round_trip: Any, sentinel_url: str, unique_name: str) -> None:
    round_trip(f"{sentinel_url};sentinel://127.0.0.1:1/1", {"master_name": "mymaster"}, unique_name)


def test_sentinel_needs_master_name(sentinel_url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"broker_transport_options: .*master_name"):
        RedisTransport(sentinel_url, {})


# -- parsing and bad settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "db", "password"),
    [
        ("redis://", "tcp", (("localhost", 6379),), 0, None),
        ("redis://h:7000/5", "tcp", (("h", 7000),), 5, None),
        ("redis://user:s%40cret@h/", "tcp", (("h", 6379),), 0, "s@cret"),
        ("rediss://:pw@h:6380/1", "tcp", (("h", 6380),), 1, "pw"),
        ("redis+socket:///tmp/r.sock?virtual_host=3", "unix", (), 3, None),
        ("sentinel://:pw@a:1;sentinel://b/2", "sentinel", (("a", 1), ("b", 26379)), 2, "pw"),
    ],
)
def test_url_forms(
    url: str, kind: str, hosts: tuple[tuple[str, int], ...], db: int, password: str | None
) -> None:
    parsed = parse_redis_url(url)
    assert (parsed.kind, parsed.hosts, parsed.db, parsed.password) == (kind, hosts, db, password)
    assert parsed.tls == url.startswith("rediss")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("amqp://h", "is not a Redis URL"),
        ("redis://h/zero", "database must be a number"),
        ("redis://h:notaport", "Port"),
        ("redis://:topsecret@h/0?sslcertreqs=none", "unknown query parameter"),
        ("redis+socket://", "socket's path"),
        ("redis+socket://host/tmp/r.sock", "no host"),
        ("redis+socket:///tmp/r.sock?db=1&virtual_host=2", "several databases"),
        ("redis://a;redis://b", "only sentinel"),
        ("sentinel://a;redis://b", "every server of a Sentinel URL"),
        ("redis://h?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ],
)
def test_bad_urls_name_the_setting(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        RedisTransport(url, {})
    assert raised.value.setting in ("broker_url", "broker_transport_options")
    assert "topsecret" not in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"visibility_timeout": "soon"}, "visibility_timeout must be a number"),
        ({"visibility_timeout": 0}, "visibility_timeout"),
        ({"socket_timeout": -1}, "socket_timeout"),
        ({"max_connections": 0}, "max_connections must be a whole number >= 1"),
        ({"retry_on_timeout": "perhaps"}, "retry_on_timeout must be true or false"),
        ({"global_keyprefix": 7}, "global_keyprefix must be a string"),
        ({"priority_steps": [0, 5, 3]}, "priority_steps"),
        ({"priority_steps": "0,3"}, "priority_steps"),
        ({"queue_order_strategy": "random"}, "queue_order_strategy"),
        ({"fanout_prefix": 3}, "fanout_prefix"),
        ({"delayed_delivery": "later"}, "delayed_delivery"),
        ({"ack_emulation": False}, "ack_emulation"),
        ({"ssl": {"ssl_cert_reqs": "required", "ssl_verify": True}}, "unknown TLS setting"),
        ({"ssl": "yes"}, "ssl must be a mapping"),
        ({"sentinel_kwargs": []}, None),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], message: str | None) -> None:
    if message is None:  # only read for sentinel:// URLs, like kombu
        RedisTransport("redis://localhost", options)
        return
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        RedisTransport("redis://localhost", options)
    assert raised.value.setting == "broker_transport_options"


def test_unknown_options_are_tolerated_like_kombu() -> None:
    transport = RedisTransport(
        "redis://localhost",
        {"polling_interval": 1, "fanout_prefix": True, "region": "eu-west-1", "master_name": None},
    )
    assert transport.visibility_timeout == 3600.0
    transport.close()


def test_connection_options_reach_redis_py() -> None:
    client = client_from_url(
        "redis://localhost/2?socket_timeout=2.5&client_name=worker-1",
        {
            "socket_connect_timeout": 1,
            "socket_keepalive": True,
            "health_check_interval": 0,
            "retry_on_timeout": "true",
            "max_connections": 3,
            "socket_timeout": 9,
        },
    )
    pool: Any = client.connection_pool
    kwargs = pool.connection_kwargs
    assert kwargs["db"] == 2
    assert kwargs["socket_timeout"] == 2.5  # the URL wins, as in kombu
    assert kwargs["socket_connect_timeout"] == 1
    assert kwargs["socket_keepalive"] is True
    assert kwargs["health_check_interval"] == 0
    assert kwargs["retry_on_timeout"] is True
    assert kwargs["client_name"] == "worker-1"
    assert pool.max_connections == 3
    client.close()


def test_building_a_transport_touches_no_network() -> None:
    transport = RedisTransport("redis://127.0.0.1:1/0", {"socket_connect_timeout": 0.2})
    with pytest.raises(TransportError, match="connect"):
        transport.connect()
    transport.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost/0",
        "rediss://localhost/0",
        "redis+socket:///tmp/redis.sock",
        "sentinel://localhost:26379",
    ],
)
def test_taskq_finds_the_transport_for_every_url_form(url: str) -> None:
    from taskq import plugins

    assert plugins.TRANSPORTS.load(plugins.scheme_of(url)) is RedisTransport


def test_an_acl_user_without_dangerous_commands(
    round_trip: Any, redis_server: Any, unique_name: str
) -> None:
    """user:password from the URL; INFO (an @dangerous command) refused is no obstacle."""
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command(
        "ACL", "SETUSER", "worker", "on", ">s3cret", "~*", "&*", "+@all", "-@dangerous"
    )
    admin.close()
    url = f"redis://worker:s3cret@127.0.0.1:{redis_server.port}/0"
    with pytest.raises(redis.ResponseError):
        client_from_url(url, {}).info("server")
    round_trip(url, {}, unique_name)
