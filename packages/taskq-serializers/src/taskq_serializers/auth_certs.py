"""Keys, certificates and the trusted certificate store behind message signing.

Without ``cryptography`` installed, importing this module (and so ``taskq_serializers.auth``)
raises ``ExtraNotInstalled`` naming the extra to install; ``import taskq_serializers`` never
imports it.

Identity follows Celery exactly (``celery/security/certificate.py``): a certificate is named by
its issuer's attribute values joined by spaces, a space, and its serial number in decimal, and that
string is the ``signer`` field on the wire. Signatures are RSA-PSS with MGF1 over the same digest
and the maximum salt length. Only RSA is accepted, as in Celery, since a Celery peer could not
verify anything else.
"""

from __future__ import annotations

import datetime
import glob
import os
from collections.abc import Iterable, Iterator

from taskq_serializers.base import ExtraNotInstalled
from taskq_serializers.security_errors import (
    BadSignature,
    CertificateExpired,
    InvalidCertificate,
    InvalidKey,
    SecurityConfigurationError,
    SecurityError,
    UnknownSigner,
)

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ExtraNotInstalled("message signing (auth)", "cryptography", "auth") from exc

__all__ = [
    "PemSource",
    "CertStoreSource",
    "DIGESTS",
    "digest_algorithm",
    "read_pem",
    "load_private_key",
    "sign",
    "Certificate",
    "CertStore",
    "load_cert_store",
]

#: PEM text, PEM bytes, or the path of a file holding them.
PemSource = str | bytes | os.PathLike[str]

#: Digests a signature may use. Celery looks any name up in ``cryptography.hazmat.primitives
#: .hashes``; taskq keeps to SHA-2 and SHA-3 so a typo or ``md5``/``sha1`` fails at start.
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha512_224": hashes.SHA512_224,
    "sha512_256": hashes.SHA512_256,
    "sha3_224": hashes.SHA3_224,
    "sha3_256": hashes.SHA3_256,
    "sha3_384": hashes.SHA3_384,
    "sha3_512": hashes.SHA3_512,
}

_PEM_MARKER = b"-----BEGIN "


def digest_algorithm(name: str) -> hashes.HashAlgorithm:
    """The hash named by the ``security_digest`` setting (``"sha256"``), case-insensitively."""
    try:
        return DIGESTS[name.lower()]()
    except KeyError:
        known = ", ".join(DIGESTS)
        raise SecurityConfigurationError(
            f"security_digest {name!r} is not supported; use one of {known}"
        ) from None


def read_pem(
    source: PemSource, setting: str, error: type[SecurityError] = InvalidCertificate
) -> bytes:
    """PEM bytes from inline PEM text/bytes or from a file path.

    ``setting`` names the value in the ``error`` raised when it is neither.
    """
    if isinstance(source, bytes):
        if _PEM_MARKER not in source:
            raise error(f"{setting}: the bytes given are not PEM (no '-----BEGIN' line)")
        return source
    if isinstance(source, str) and _PEM_MARKER.decode() in source:
        return source.encode()
    try:
        with open(source, "rb") as pem_file:
            return pem_file.read()
    except OSError as exc:
        raise error(f"{setting}: not PEM text, and cannot read it as a file: {exc}") from exc


def load_private_key(source: PemSource, password: str | bytes | None = None) -> rsa.RSAPrivateKey:
    """The RSA private key in ``source`` (``security_key``), decrypted with ``password``."""
    pem = read_pem(source, "security_key", InvalidKey)
    secret = password.encode() if isinstance(password, str) else password
    try:
        key = serialization.load_pem_private_key(pem, password=secret)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidKey(f"security_key: cannot load the private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidKey(
            f"security_key: only RSA private keys can sign messages (Celery verifies RSA-PSS "
            f"only); got {type(key).__name__}"
        )
    return key


def _pss(digest: hashes.HashAlgorithm) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.MAX_LENGTH)


def sign(key: rsa.RSAPrivateKey, data: bytes, digest: hashes.HashAlgorithm) -> bytes:
    """The RSA-PSS signature of ``data``, as Celery makes it."""
    return key.sign(data, _pss(digest), digest)


class Certificate:
    """An RSA X.509 certificate, named and checked the way Celery does it."""

    def __init__(self, cert: x509.Certificate) -> None:
        public_key = cert.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise InvalidCertificate(
                f"only RSA certificates are supported (Celery verifies RSA-PSS only); "
                f"got a {type(public_key).__name__}"
            )
        self.x509 = cert
        self.public_key: rsa.RSAPublicKey = public_key
        self.id = _signer_id(cert)

    @classmethod
    def from_pem(cls, source: PemSource) -> Certificate:
        """The single certificate in ``source`` (the ``security_certificate`` setting)."""
        pem = read_pem(source, "security_certificate")
        try:
            return cls(x509.load_pem_x509_certificate(pem))
        except ValueError as exc:
            raise InvalidCertificate(
                f"security_certificate: not a PEM X.509 certificate: {exc}"
            ) from exc

    def has_expired(self, now: datetime.datetime | None = None) -> bool:
        """Whether ``now`` is at or past ``notAfter``. Celery ignores ``notBefore``; so do we."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now >= self.x509.not_valid_after_utc

    def matches(self, key: rsa.RSAPrivateKey) -> bool:
        """Whether ``key`` is the private half of this certificate's public key."""
        return key.public_key().public_numbers() == self.public_key.public_numbers()

    def verify(self, data: bytes, signature: bytes, digest: hashes.HashAlgorithm) -> None:
        """Refuse, with a typed error, unless this certificate is current and signed ``data``."""
        if self.has_expired():
            raise CertificateExpired(
                f"certificate of signer {self.id!r} expired at "
                f"{self.x509.not_valid_after_utc.isoformat()}"
            )
        try:
            self.public_key.verify(signature, data, _pss(digest), digest)
        except InvalidSignature:
            raise BadSignature(
                f"signature by {self.id!r} does not match the message body: it was changed "
                f"after signing, or signed with another key or digest"
            ) from None


def _signer_id(cert: x509.Certificate) -> str:
    """Celery's ``Certificate.get_id``: issuer attribute values and serial, space-separated."""
    values: list[str] = []
    for attribute in cert.issuer:
        if not isinstance(attribute.value, str):
            raise InvalidCertificate(
                f"issuer attribute {attribute.oid.dotted_string} has a binary value; "
                f"a signer id must be text"
            )
        values.append(attribute.value)
    return f"{' '.join(values)} {cert.serial_number}"


class CertStore:
    """The certificates whose signatures a receiver trusts, by signer id."""

    def __init__(self, certificates: Iterable[Certificate] = ()) -> None:
        self._certs: dict[str, Certificate] = {}
        for cert in certificates:
            self.add(cert)

    def add(self, cert: Certificate) -> None:
        """Trust ``cert``. Two different certificates under one id would make a signer ambiguous."""
        known = self._certs.get(cert.id)
        if known is not None and known.x509 != cert.x509:
            raise InvalidCertificate(f"two different certificates share the signer id {cert.id!r}")
        self._certs[cert.id] = cert

    def __getitem__(self, signer: str) -> Certificate:
        try:
            return self._certs[signer]
        except KeyError:
            raise UnknownSigner(
                f"no trusted certificate for signer {signer!r}: add it to security_cert_store "
                f"if the sender is trusted"
            ) from None

    def __contains__(self, signer: object) -> bool:
        return signer in self._certs

    def __iter__(self) -> Iterator[Certificate]:
        return iter(self._certs.values())

    def __len__(self) -> int:
        return len(self._certs)


#: What ``security_cert_store`` may be: a glob or directory, inline PEM, or a ready store.
CertStoreSource = str | bytes | os.PathLike[str] | CertStore


def load_cert_store(source: CertStoreSource) -> CertStore:
    """The trusted store named by ``security_cert_store``.

    Accepts what Celery's setting does (a glob such as ``/etc/certs/*.pem``, or a directory, whose
    every file is read), PEM text or bytes holding one or more certificates, or a ready
    ``CertStore``. As in Celery, an expired certificate here is a configuration error, raised at
    start rather than on the first message. A glob that matches nothing is refused too: a store
    that trusts no one would refuse every message.
    """
    if isinstance(source, CertStore):
        return source
    if isinstance(source, bytes) or (isinstance(source, str) and _PEM_MARKER.decode() in source):
        return _checked_store(_parse_pems(read_pem(source, "security_cert_store"), "inline PEM"))
    pattern = os.fspath(source)
    if os.path.isdir(pattern):
        pattern = os.path.join(pattern, "*")
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise InvalidCertificate(f"security_cert_store: {pattern!r} matches no certificate files")
    certs: list[tuple[str, Certificate]] = []
    for path in paths:
        certs.extend(_parse_pems(read_pem(path, "security_cert_store"), path))
    return _checked_store(certs)


def _parse_pems(pem: bytes, origin: str) -> list[tuple[str, Certificate]]:
    try:
        loaded = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise InvalidCertificate(
            f"security_cert_store: {origin} holds no valid PEM certificate: {exc}"
        ) from exc
    return [(origin, Certificate(cert)) for cert in loaded]


def _checked_store(certs: list[tuple[str, Certificate]]) -> CertStore:
    store = CertStore()
    for origin, cert in certs:
        if cert.has_expired():
            raise CertificateExpired(
                f"security_cert_store: certificate {cert.id!r} in {origin} expired at "
                f"{cert.x509.not_valid_after_utc.isoformat()}"
            )
        store.add(cert)
    return store
