"""Message signing: round trips, the exact wire format, every refusal, and interop with Celery.

Keys and certificates are generated here at test time; no private key is committed.
"""

from __future__ import annotations

import base64
import datetime
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskq_serializers.auth import SEPARATOR, AuthSerializer, setup_security, unpack
from taskq_serializers.auth_certs import Certificate, CertStore, load_cert_store
from taskq_serializers.base import ContentDisallowed, DecodeError, SerializationError
from taskq_serializers.security_errors import (
    BadSignature,
    CertificateExpired,
    InnerContentRefused,
    InvalidCertificate,
    InvalidKey,
    MalformedSignedMessage,
    SecurityConfigurationError,
    SecurityError,
    UnknownSigner,
    UnsignedMessage,
)
from taskq_serializers.serialization import SerializerRegistry

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
PAYLOAD: dict[str, Any] = {"args": [1, "two", 3.5], "kwargs": {"name": "Åse ✓"}, "nested": [None]}


@dataclass(frozen=True)
class Identity:
    """A private key and its certificate, as PEM, the way an operator would hold them."""

    key_pem: bytes
    cert_pem: bytes
    cert: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "taskq tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_cert(
    key: CertificateIssuerPrivateKeyTypes,
    common_name: str,
    *,
    serial: int = 1000,
    not_after: datetime.datetime = NOW + DAY,
) -> x509.Certificate:
    """A self-signed certificate for ``key``; its issuer is its own subject."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - 2 * DAY)
        .not_valid_after(not_after)
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )


def key_pem(key: CertificateIssuerPrivateKeyTypes, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_identity(common_name: str, serial: int = 1000) -> Identity:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = make_cert(key, common_name, serial=serial)
    return Identity(key_pem(key), cert_pem(cert), cert)


@pytest.fixture(scope="module")
def alice() -> Identity:
    return make_identity("alice", serial=4242)


@pytest.fixture(scope="module")
def bob() -> Identity:
    return make_identity("bob", serial=77)


@pytest.fixture(scope="module")
def mallory() -> Identity:
    return make_identity("mallory")


@pytest.fixture
def registry() -> SerializerRegistry:
    return SerializerRegistry.with_defaults()


@pytest.fixture
def signer(alice: Identity, bob: Identity, registry: SerializerRegistry) -> AuthSerializer:
    """Alice signs; she trusts herself and bob."""
    return AuthSerializer(
        alice.key_pem, alice.cert_pem, alice.cert_pem + bob.cert_pem, registry=registry
    )


def repack(data: bytes, **changes: bytes) -> bytes:
    """A signed payload with some raw (already base64-decoded) fields replaced."""
    names = ("signer", "signature", "content_type", "content_encoding", "body")
    fields: dict[str, bytes] = dict(
        zip(names, base64.b64decode(data).split(SEPARATOR, 4), strict=True)
    )
    fields["signer"] = base64.b64decode(fields["signer"])
    fields["signature"] = base64.b64decode(fields["signature"])
    fields.update(changes)
    fields["signer"] = base64.b64encode(fields["signer"])
    fields["signature"] = base64.b64encode(fields["signature"])
    return base64.b64encode(SEPARATOR.join(fields[name] for name in names))


# -- round trips and the wire format ---------------------------------------------------------------


def test_round_trip(signer: AuthSerializer) -> None:
    assert signer.loads(signer.dumps(PAYLOAD)) == PAYLOAD


def test_identity_and_content_type(signer: AuthSerializer) -> None:
    assert (signer.name, signer.content_type, signer.content_encoding) == (
        "auth",
        "application/data",
        "utf-8",
    )
    # Celery's Certificate.get_id: issuer attribute values, space-joined, then the serial.
    assert signer.signer == "NO taskq tests alice 4242"


def test_wire_format_is_celerys(signer: AuthSerializer, alice: Identity) -> None:
    data = signer.dumps(PAYLOAD)
    raw = base64.b64decode(data, validate=True)
    signer_b64, signature_b64, content_type, content_encoding, body = raw.split(SEPARATOR, 4)
    assert base64.b64decode(signer_b64) == b"NO taskq tests alice 4242"
    assert (content_type, content_encoding) == (b"application/json", b"utf-8")
    assert body == SerializerRegistry.with_defaults().dumps(PAYLOAD)[2]
    public_key = alice.cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    # RSA-PSS, MGF1(sha256), maximum salt length, over the inner body only; raises if not.
    public_key.verify(
        base64.b64decode(signature_b64),
        body,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA256(),
    )
    assert unpack(data)[0] == "NO taskq tests alice 4242"


def test_body_containing_the_separator_round_trips(signer: AuthSerializer) -> None:
    # The body is the last field and split off with maxsplit=4, so it may hold the separator.
    assert signer.loads(signer.dumps({"s": "\x00\x01\x00\x01"})) == {"s": "\x00\x01\x00\x01"}


def test_any_trusted_signer_is_accepted(
    signer: AuthSerializer, bob: Identity, alice: Identity, registry: SerializerRegistry
) -> None:
    bob_signs = AuthSerializer(bob.key_pem, bob.cert_pem, bob.cert_pem, registry=registry)
    assert signer.loads(bob_signs.dumps(PAYLOAD)) == PAYLOAD
    # ...but bob trusts only himself, so alice's messages are refused by him.
    with pytest.raises(UnknownSigner, match="alice"):
        bob_signs.loads(signer.dumps(PAYLOAD))


def test_settings_as_file_paths_glob_and_directory(
    tmp_path: Path, alice: Identity, bob: Identity, registry: SerializerRegistry
) -> None:
    (tmp_path / "alice.key").write_bytes(alice.key_pem)
    (tmp_path / "alice.pem").write_bytes(alice.cert_pem)
    store = tmp_path / "store"
    store.mkdir()
    (store / "alice.pem").write_bytes(alice.cert_pem)
    (store / "bob.pem").write_bytes(bob.cert_pem)
    for cert_store in (str(store / "*.pem"), store, str(store)):
        auth = AuthSerializer(
            str(tmp_path / "alice.key"), tmp_path / "alice.pem", cert_store, registry=registry
        )
        assert auth.loads(auth.dumps(PAYLOAD)) == PAYLOAD
    assert {cert.id for cert in load_cert_store(str(store / "*.pem"))} == {
        "NO taskq tests alice 4242",
        "NO taskq tests bob 77",
    }


def test_password_protected_key(alice: Identity, registry: SerializerRegistry) -> None:
    key = serialization.load_pem_private_key(alice.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    locked = key_pem(key, password=b"s3cret")
    for password in (b"s3cret", "s3cret"):
        auth = AuthSerializer(
            locked, alice.cert_pem, alice.cert_pem, key_password=password, registry=registry
        )
        assert auth.loads(auth.dumps(PAYLOAD)) == PAYLOAD
    for wrong in (b"nope", None):
        with pytest.raises(InvalidKey, match="security_key: cannot load"):
            AuthSerializer(
                locked, alice.cert_pem, alice.cert_pem, key_password=wrong, registry=registry
            )


def test_other_digest(alice: Identity, registry: SerializerRegistry) -> None:
    sha512 = AuthSerializer(
        alice.key_pem, alice.cert_pem, alice.cert_pem, digest="SHA512", registry=registry
    )
    assert sha512.loads(sha512.dumps(PAYLOAD)) == PAYLOAD
    sha256 = AuthSerializer(alice.key_pem, alice.cert_pem, alice.cert_pem, registry=registry)
    # The digest is configuration on both ends, not on the wire: a mismatch cannot verify.
    with pytest.raises(BadSignature):
        sha256.loads(sha512.dumps(PAYLOAD))


def test_other_inner_serializer_needs_accept_inner(
    alice: Identity, signer: AuthSerializer, registry: SerializerRegistry
) -> None:
    msgpack_signs = AuthSerializer(
        alice.key_pem, alice.cert_pem, alice.cert_pem, serializer="msgpack", registry=registry
    )
    data = msgpack_signs.dumps(PAYLOAD)
    assert unpack(data)[2] == "application/x-msgpack"
    with pytest.raises(InnerContentRefused, match="application/x-msgpack"):
        signer.loads(data)
    also_msgpack = AuthSerializer(
        alice.key_pem, alice.cert_pem, alice.cert_pem, accept_inner=["msgpack"], registry=registry
    )
    assert also_msgpack.loads(data) == PAYLOAD


# -- refusals of messages ------------------------------------------------------------------------


def test_tampered_body_is_refused(signer: AuthSerializer) -> None:
    data = repack(signer.dumps({"amount": 10}), body=b'{"amount":10000}')
    with pytest.raises(BadSignature, match="alice"):
        signer.loads(data)


def test_tampered_signature_is_refused(signer: AuthSerializer) -> None:
    data = signer.dumps(PAYLOAD)
    signature = bytearray(unpack(data)[1])
    signature[10] ^= 0x01
    with pytest.raises(BadSignature):
        signer.loads(repack(data, signature=bytes(signature)))


def test_swapped_inner_content_type_is_refused(signer: AuthSerializer) -> None:
    # The inner content type is not signed (in Celery either), so it is checked, not trusted.
    data = repack(signer.dumps(PAYLOAD), content_type=b"application/x-python-serialize")
    with pytest.raises(InnerContentRefused, match="application/x-python-serialize"):
        signer.loads(data)


def test_unknown_signer_is_refused(
    signer: AuthSerializer, mallory: Identity, registry: SerializerRegistry
) -> None:
    outsider = AuthSerializer(
        mallory.key_pem, mallory.cert_pem, mallory.cert_pem, registry=registry
    )
    with pytest.raises(UnknownSigner, match="'NO taskq tests mallory 1000'"):
        signer.loads(outsider.dumps(PAYLOAD))


def test_forged_signer_name_is_refused(
    signer: AuthSerializer, mallory: Identity, registry: SerializerRegistry
) -> None:
    # Mallory claims to be alice: the name is known, her key does not match alice's certificate.
    outsider = AuthSerializer(
        mallory.key_pem, mallory.cert_pem, mallory.cert_pem, registry=registry
    )
    data = repack(outsider.dumps(PAYLOAD), signer=signer.signer.encode())
    with pytest.raises(BadSignature):
        signer.loads(data)


def test_expired_certificate_is_refused_at_verification(
    alice: Identity, registry: SerializerRegistry
) -> None:
    key = serialization.load_pem_private_key(alice.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    # The receiver's copy of alice's certificate (same issuer and serial) has since expired.
    expired = make_cert(key, "alice", serial=4242, not_after=NOW - DAY)
    receiver = AuthSerializer(
        alice.key_pem, alice.cert_pem, CertStore([Certificate(expired)]), registry=registry
    )
    sender = AuthSerializer(alice.key_pem, alice.cert_pem, alice.cert_pem, registry=registry)
    with pytest.raises(CertificateExpired, match="'NO taskq tests alice 4242' expired"):
        receiver.loads(sender.dumps(PAYLOAD))


def test_unsigned_json_is_refused(signer: AuthSerializer) -> None:
    with pytest.raises(UnsignedMessage, match="not base64"):
        signer.loads(b'{"args": [1, 2]}')
    with pytest.raises(UnsignedMessage, match="no signer/signature fields"):
        signer.loads(base64.b64encode(b'{"args": [1, 2]}'))
    with pytest.raises(UnsignedMessage):
        signer.loads(b"")


@pytest.mark.parametrize(
    ("corrupt", "error", "match"),
    [
        (lambda data: data[:-3], UnsignedMessage, "not base64"),
        (lambda data: b"*" + data[1:], UnsignedMessage, "not base64"),
        (
            lambda data: base64.b64encode(
                b"%%%" + base64.b64decode(data)[base64.b64decode(data).index(SEPARATOR) :]
            ),
            MalformedSignedMessage,
            "signer field is not base64",
        ),
        (
            lambda data: repack(data, signature=b""),
            MalformedSignedMessage,
            "signature field is empty",
        ),
        (
            lambda data: base64.b64encode(
                SEPARATOR.join(base64.b64decode(data).split(SEPARATOR)[:3])
            ),
            MalformedSignedMessage,
            "has 3 fields, expected 5",
        ),
        (lambda data: repack(data, content_type=b"\xff\xfe"), MalformedSignedMessage, "not text"),
    ],
    ids=[
        "truncated",
        "bad-char",
        "bad-signer-b64",
        "empty-signature",
        "missing-fields",
        "binary-type",
    ],
)
def test_malformed_payloads_are_refused(
    signer: AuthSerializer, corrupt: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        signer.loads(corrupt(signer.dumps(PAYLOAD)))


def test_errors_are_typed_and_pickle() -> None:
    for error in (UnsignedMessage, MalformedSignedMessage):
        assert issubclass(error, DecodeError)
    for error in (
        UnsignedMessage,
        MalformedSignedMessage,
        UnknownSigner,
        CertificateExpired,
        BadSignature,
        InnerContentRefused,
        InvalidKey,
        InvalidCertificate,
    ):
        assert issubclass(error, SecurityError)
        assert issubclass(error, SerializationError)
        copy = pickle.loads(pickle.dumps(error("why it failed")))
        assert type(copy) is error
        assert str(copy) == "why it failed"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.lists(st.binary(max_size=40), max_size=6).map(
            lambda fields: base64.b64encode(SEPARATOR.join(fields))
        ),
    )
)
def test_arbitrary_input_raises_only_security_errors(signer: AuthSerializer, data: bytes) -> None:
    with pytest.raises(SecurityError):
        signer.loads(data)


# -- refusals of configuration --------------------------------------------------------------------


def test_non_rsa_keys_are_refused(alice: Identity, registry: SerializerRegistry) -> None:
    for key in (ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()):
        with pytest.raises(InvalidKey, match="only RSA private keys"):
            AuthSerializer(key_pem(key), alice.cert_pem, alice.cert_pem, registry=registry)


def test_non_rsa_certificates_are_refused(alice: Identity, registry: SerializerRegistry) -> None:
    ec_cert = cert_pem(make_cert(ec.generate_private_key(ec.SECP256R1()), "ec"))
    with pytest.raises(InvalidCertificate, match="only RSA certificates"):
        AuthSerializer(alice.key_pem, ec_cert, alice.cert_pem, registry=registry)
    with pytest.raises(InvalidCertificate, match="only RSA certificates"):
        load_cert_store(ec_cert)


def test_key_must_match_certificate(
    alice: Identity, bob: Identity, registry: SerializerRegistry
) -> None:
    with pytest.raises(InvalidKey, match="not the private key of security_certificate"):
        AuthSerializer(alice.key_pem, bob.cert_pem, alice.cert_pem, registry=registry)


def test_own_expired_certificate_is_refused(alice: Identity, registry: SerializerRegistry) -> None:
    key = serialization.load_pem_private_key(alice.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    expired = cert_pem(make_cert(key, "alice", not_after=NOW - DAY))
    with pytest.raises(CertificateExpired, match="security_certificate"):
        AuthSerializer(alice.key_pem, expired, alice.cert_pem, registry=registry)


def test_expired_certificate_in_store_fails_at_load(tmp_path: Path, alice: Identity) -> None:
    key = serialization.load_pem_private_key(alice.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    (tmp_path / "old.pem").write_bytes(cert_pem(make_cert(key, "old", not_after=NOW - DAY)))
    (tmp_path / "alice.pem").write_bytes(alice.cert_pem)
    with pytest.raises(CertificateExpired, match=r"old\.pem expired"):
        load_cert_store(str(tmp_path / "*.pem"))


def test_bad_store_sources(tmp_path: Path, alice: Identity) -> None:
    with pytest.raises(InvalidCertificate, match="matches no certificate files"):
        load_cert_store(str(tmp_path / "*.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(InvalidCertificate, match="holds no valid PEM certificate"):
        load_cert_store(str(tmp_path / "*.pem"))
    with pytest.raises(InvalidCertificate, match="not PEM"):
        load_cert_store(b"\x30\x82 DER bytes")


def test_conflicting_certificates_with_one_signer_id(alice: Identity) -> None:
    impostor = make_cert(rsa.generate_private_key(65537, 2048), "alice", serial=4242)
    store = CertStore([Certificate(alice.cert), Certificate(alice.cert)])  # same one: fine
    assert len(store) == 1
    with pytest.raises(InvalidCertificate, match="share the signer id 'NO taskq tests alice 4242'"):
        store.add(Certificate(impostor))


def test_unreadable_key_and_certificate(
    tmp_path: Path, alice: Identity, registry: SerializerRegistry
) -> None:
    with pytest.raises(InvalidKey, match="security_key: not PEM text, and cannot read it"):
        AuthSerializer(
            str(tmp_path / "missing.key"), alice.cert_pem, alice.cert_pem, registry=registry
        )
    with pytest.raises(InvalidCertificate, match=r"security_certificate: not a PEM X\.509"):
        AuthSerializer(alice.key_pem, alice.key_pem, alice.cert_pem, registry=registry)


@pytest.mark.parametrize("digest", ["md5", "sha1", "blake2b", "nonsense"])
def test_weak_or_unknown_digest_is_refused(
    digest: str, alice: Identity, registry: SerializerRegistry
) -> None:
    with pytest.raises(SecurityConfigurationError, match=f"security_digest '{digest}'"):
        AuthSerializer(
            alice.key_pem, alice.cert_pem, alice.cert_pem, digest=digest, registry=registry
        )


def test_auth_cannot_wrap_itself(
    signer: AuthSerializer, alice: Identity, registry: SerializerRegistry
) -> None:
    registry.register(signer)
    with pytest.raises(SecurityConfigurationError, match="cannot be the inner serializer"):
        AuthSerializer(
            alice.key_pem, alice.cert_pem, alice.cert_pem, serializer="auth", registry=registry
        )


# -- setup_security and the registry -------------------------------------------------------------


def test_setup_security_accepts_only_signed_content(
    alice: Identity, registry: SerializerRegistry
) -> None:
    auth = setup_security(alice.key_pem, alice.cert_pem, alice.cert_pem, registry=registry)
    assert registry.get("auth") is auth
    content_type, content_encoding, body = registry.dumps(PAYLOAD, serializer="auth")
    assert (content_type, content_encoding) == ("application/data", "utf-8")
    assert registry.loads(body, content_type, content_encoding, accept=["auth"]) == PAYLOAD
    # Plain json is switched off for incoming data, though the signed body inside is json.
    json_body = registry.dumps(PAYLOAD)[2]
    with pytest.raises(ContentDisallowed, match="disabled"):
        registry.loads(json_body, "application/json", "utf-8", accept=["auth", "json"])
    # A body sent with no content type is application/data too: it must be signed.
    with pytest.raises(UnsignedMessage):
        registry.loads(json_body, "", "utf-8")


def test_setup_security_can_keep_named_serializers(
    alice: Identity, registry: SerializerRegistry
) -> None:
    setup_security(
        alice.key_pem,
        alice.cert_pem,
        alice.cert_pem,
        registry=registry,
        allowed_serializers=["json"],
    )
    json_body = registry.dumps(PAYLOAD)[2]
    assert registry.loads(json_body, "application/json", "utf-8") == PAYLOAD
    with pytest.raises(ContentDisallowed):
        registry.loads(
            registry.dumps(PAYLOAD, "msgpack")[2],
            "application/x-msgpack",
            "binary",
            accept=["msgpack"],
        )


def test_imports_cryptography_only_when_asked() -> None:
    code = (
        "import sys, taskq_serializers, taskq_serializers.serialization, taskq_serializers.base\n"
        "assert 'cryptography' not in sys.modules, 'imported cryptography eagerly'\n"
        "sys.modules['cryptography'] = None\n"
        "try:\n"
        "    import taskq_serializers.auth\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "ExtraNotInstalled" in result.stdout
    assert "pip install 'taskq[auth]'" in result.stdout


# -- interop with Celery's own code --------------------------------------------------------------


def celery_secure_serializer(identity: Identity, trusted: list[Identity]) -> Any:
    """Celery's SecureSerializer, as ``register_auth`` builds it, without touching kombu globals."""
    security = pytest.importorskip("celery.security.serialization")
    from celery.security.certificate import Certificate as CeleryCertificate
    from celery.security.certificate import CertStore as CeleryCertStore
    from celery.security.key import PrivateKey

    store = CeleryCertStore()
    for other in trusted:
        store.add_cert(CeleryCertificate(other.cert_pem.decode()))
    return security.SecureSerializer(
        PrivateKey(identity.key_pem.decode()),
        CeleryCertificate(identity.cert_pem.decode()),
        store,
        digest="sha256",
        serializer="json",
    )


@pytest.mark.interop
def test_celery_verifies_what_taskq_signs(signer: AuthSerializer, alice: Identity) -> None:
    celery = celery_secure_serializer(alice, [alice])
    assert celery.deserialize(signer.dumps(PAYLOAD)) == PAYLOAD
    # kombu hands the deserializer text when the message was received as text.
    assert celery.deserialize(signer.dumps(PAYLOAD).decode()) == PAYLOAD


@pytest.mark.interop
def test_taskq_verifies_what_celery_signs(
    signer: AuthSerializer, alice: Identity, bob: Identity
) -> None:
    for identity in (alice, bob):
        signed = celery_secure_serializer(identity, [identity]).serialize(PAYLOAD)
        assert isinstance(signed, str)
        assert signer.loads(signed.encode()) == PAYLOAD


@pytest.mark.interop
def test_taskq_refuses_tampered_celery_message(signer: AuthSerializer, alice: Identity) -> None:
    signed = celery_secure_serializer(alice, [alice]).serialize({"amount": 10}).encode()
    with pytest.raises(BadSignature):
        signer.loads(repack(signed, body=b'{"amount": 10000}'))


@pytest.mark.interop
def test_celery_refuses_tampered_taskq_message(signer: AuthSerializer, alice: Identity) -> None:
    from celery.exceptions import SecurityError as CelerySecurityError

    data = repack(signer.dumps({"amount": 10}), body=b'{"amount": 10000}')
    # Celery 5.7.0 refuses it, though not with its "Bad signature" message: its reraise_errors
    # default catches the module cryptography.exceptions, which itself raises a TypeError.
    with pytest.raises(CelerySecurityError, match="Unable to deserialize"):
        celery_secure_serializer(alice, [alice]).deserialize(data)


@pytest.mark.interop
def test_signer_id_matches_celery_for_a_multi_attribute_issuer() -> None:
    from celery.security.certificate import Certificate as CeleryCertificate

    key = rsa.generate_private_key(65537, 2048)
    issuer = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Celery"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops"),
            x509.NameAttribute(NameOID.COMMON_NAME, "worker.example.com"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.com"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("leaf"))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(2**64 + 12345)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(key, hashes.SHA256())
    )
    pem = cert_pem(cert)
    assert Certificate.from_pem(pem).id == CeleryCertificate(pem.decode()).get_id()
