"""Message signing: Celery's ``auth`` serializer, byte for byte.

A sender serializes the body with an inner serializer (json by default), signs those bytes with
its RSA key, and wraps signer, signature, inner content type, inner content encoding and inner
body in one base64 string. A receiver looks the signer up in its store of trusted certificates,
checks the signature, and only then decodes the inner body. A Celery worker configured with
``app.setup_security()`` verifies what taskq signs, and taskq verifies what Celery signs.

Wire format (content type ``application/data``, encoding ``utf-8``)::

    base64( b64(signer) SEP b64(signature) SEP inner_content_type SEP inner_content_encoding
            SEP inner_body )                                     SEP = b"\\x00\\x01"

What the signature covers, exactly as in Celery: the inner body bytes and nothing else. Headers
and message properties are not signed, so ``argsrepr``, ``kwargsrepr``, the task name in
``headers.task``, routing, ETA and retries can all be changed on the broker without detection.
Nor are the inner content type and encoding signed: they sit beside the body. That is why a
receiver here decodes only the inner content types it names (``accept_inner``, by default just the
configured inner serializer), instead of whatever the message claims.

Within those, the inner body is decoded with ``force=True``, as Celery does, bypassing the
registry's disabled list. That is safe: ``setup_security`` disables every format but ``auth`` for
unsigned input, and this body was produced and signed by a holder of a trusted key; refusing it
would make signed json unreadable once plain json is switched off.

This module needs ``cryptography`` (``pip install 'taskq[auth]'``; importing it without raises
``ExtraNotInstalled`` saying so); ``import taskq_serializers`` never imports it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from taskq_serializers.auth_certs import (
    Certificate,
    CertStoreSource,
    PemSource,
    digest_algorithm,
    load_cert_store,
    load_private_key,
    sign,
)
from taskq_serializers.security_errors import (
    CertificateExpired,
    InnerContentRefused,
    InvalidKey,
    MalformedSignedMessage,
    SecurityConfigurationError,
    UnsignedMessage,
)
from taskq_serializers.serialization import SerializerRegistry
from taskq_serializers.serialization import registry as default_registry

__all__ = ["SEPARATOR", "AuthSerializer", "setup_security", "unpack"]

#: Separates the five fields of a signed payload, as in Celery (``DEFAULT_SEPARATOR``).
SEPARATOR = b"\x00\x01"


class AuthSerializer:
    """Signs what it serializes and verifies what it deserializes (registered as ``auth``).

    ``key`` (``security_key``), ``certificate`` (``security_certificate``) and ``cert_store``
    (``security_cert_store``) are what Celery's settings name: ``key`` and ``certificate`` as PEM
    text, PEM bytes or a file path; ``cert_store`` as a glob or directory of PEM files, inline PEM,
    or a ``CertStore``. ``serializer`` is the inner format, looked up in ``registry``;
    ``accept_inner`` names further inner formats a receiver decodes (senders may use another).
    """

    name: str = "auth"
    content_type: str = "application/data"
    content_encoding: str = "utf-8"

    def __init__(
        self,
        key: PemSource,
        certificate: PemSource,
        cert_store: CertStoreSource,
        *,
        key_password: str | bytes | None = None,
        digest: str = "sha256",
        serializer: str = "json",
        accept_inner: Iterable[str] = (),
        registry: SerializerRegistry | None = None,
    ) -> None:
        self._registry = registry if registry is not None else default_registry
        self._digest = digest_algorithm(digest)
        self._key = load_private_key(key, key_password)
        self._cert = Certificate.from_pem(certificate)
        if self._cert.has_expired():
            raise CertificateExpired(
                f"security_certificate {self._cert.id!r} has expired: receivers would refuse "
                f"every message it signs"
            )
        if not self._cert.matches(self._key):
            raise InvalidKey(
                f"security_key is not the private key of security_certificate "
                f"(signer {self._cert.id!r}): receivers would refuse every signature"
            )
        self._store = load_cert_store(cert_store)
        self._serializer = serializer
        self._signer = base64.b64encode(self._cert.id.encode())
        self._accepted_inner = frozenset(
            self._inner_content_type(name) for name in (serializer, *accept_inner)
        )

    def _inner_content_type(self, name: str) -> str:
        content_type = self._registry.get(name).content_type
        if content_type == self.content_type:
            raise SecurityConfigurationError(
                f"{name!r} cannot be the inner serializer of auth: it is {self.content_type} "
                f"itself, which would be verified again instead of decoded"
            )
        return content_type

    @property
    def signer(self) -> str:
        """This sender's id on the wire: certificate issuer values and serial number."""
        return self._cert.id

    def dumps(self, obj: object, /) -> bytes:
        """Serialize ``obj`` with the inner serializer and sign the result."""
        content_type, content_encoding, body = self._registry.dumps(
            obj, serializer=self._serializer
        )
        signature = sign(self._key, body, self._digest)
        fields = (
            self._signer,
            base64.b64encode(signature),
            content_type.encode(),
            content_encoding.encode(),
            body,
        )
        return base64.b64encode(SEPARATOR.join(fields))

    def loads(self, data: bytes, /) -> object:
        """Verify ``data`` against the trusted store, then decode the inner body."""
        signer, signature, content_type, content_encoding, body = unpack(data)
        self._store[signer].verify(body, signature, self._digest)
        if content_type not in self._accepted_inner:
            accepted = ", ".join(sorted(self._accepted_inner))
            raise InnerContentRefused(
                f"message signed by {signer!r} wraps {content_type!r}, but this receiver decodes "
                f"only {accepted} inside signed messages (add the serializer to accept_inner if "
                f"its senders use it)"
            )
        return self._registry.loads(body, content_type, content_encoding, force=True)


def unpack(data: bytes) -> tuple[str, bytes, str, str, bytes]:
    """Split a signed payload into signer, signature, content type, encoding and inner body.

    Raises ``UnsignedMessage`` when ``data`` is not a signed envelope at all and
    ``MalformedSignedMessage`` when it is one with a corrupt field. Checks nothing cryptographic.
    """
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UnsignedMessage(
            "body is not a signed message: it is not base64 (was it sent without the auth "
            "serializer?)"
        ) from None
    fields = raw.split(SEPARATOR, 4)
    if len(fields) == 1:
        raise UnsignedMessage(
            "body is not a signed message: it has no signer/signature fields (was it sent "
            "without the auth serializer?)"
        )
    if len(fields) < 5:
        raise MalformedSignedMessage(
            f"signed message has {len(fields)} fields, expected 5 "
            f"(signer, signature, content type, content encoding, body)"
        )
    signer_b64, signature_b64, content_type, content_encoding, body = fields
    signer = _field(signer_b64, "signer")
    signature = _field(signature_b64, "signature")
    try:
        return (
            signer.decode(),
            signature,
            content_type.decode("ascii"),
            content_encoding.decode("ascii"),
            body,
        )
    except UnicodeDecodeError as exc:
        raise MalformedSignedMessage(
            f"signed message has a field that is not text: {exc}"
        ) from None


def _field(value: bytes, name: str) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedSignedMessage(f"signed message's {name} field is not base64") from None
    if not decoded:
        raise MalformedSignedMessage(f"signed message's {name} field is empty")
    return decoded


def setup_security(
    key: PemSource,
    certificate: PemSource,
    cert_store: CertStoreSource,
    *,
    digest: str = "sha256",
    serializer: str = "json",
    key_password: str | bytes | None = None,
    registry: SerializerRegistry | None = None,
    allowed_serializers: Iterable[str] = (),
) -> AuthSerializer:
    """Sign everything sent and accept only signed content: Celery's ``app.setup_security()``.

    Registers an ``AuthSerializer`` in ``registry`` (the module default if None), then disables
    every other serializer for incoming data except ``allowed_serializers``, as Celery's
    ``disable_insecure_serializers`` call does (Celery's default leaves nothing but ``auth``).
    Signed bodies still decode their inner json: that path forces past the disabled list.
    The app must also send with ``task_serializer='auth'`` and accept ``['auth']``: Celery refuses
    to start otherwise, and that check belongs to the app's configuration.
    """
    target = registry if registry is not None else default_registry
    auth = AuthSerializer(
        key,
        certificate,
        cert_store,
        key_password=key_password,
        digest=digest,
        serializer=serializer,
        registry=target,
    )
    target.register(auth)
    target.disable_insecure(allowed=(auth.name, *allowed_serializers))
    return auth
