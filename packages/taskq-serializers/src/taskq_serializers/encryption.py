"""Payload encryption: task arguments that the broker, and anyone reading it, cannot see.

Signing (``auth``) proves who sent a body but leaves it readable; this serializer hides it.
It is taskq's own format, opt-in, and **a Celery worker cannot read these messages**: use it only
where every producer and consumer of the queue is taskq.

The body is AES-256-GCM (authenticated encryption), so a changed, truncated or re-keyed payload is
refused instead of decoded. Keys carry ids so they can rotate: a serializer holds every key it may
need to decrypt and encrypts with one, the primary. To rotate, add the new key to every receiver,
then make it the primary on senders, then drop the old key once no message made with it remains.

Payload layout (``application/x-taskq-encrypted``, encoding ``binary``)::

    version (1 byte) | key id length (1 byte) | key id (utf-8) | nonce (12 bytes) | ciphertext+tag

The version, key id length and key id are the AES-GCM associated data, so they are authenticated
too. The plaintext is the inner content type and content encoding, each prefixed by its length in
one byte, then the inner body: the inner format travels inside the ciphertext and cannot be
swapped. Nonces are random; with one key, stay below about 2**32 messages (rotate well before).

What is NOT encrypted: message headers and properties. The task name, id, ETA, routing and, most
importantly, ``argsrepr`` and ``kwargsrepr`` (a ``repr`` of the very arguments this hides) travel
in clear. The app that sends must blank those two: ``EncryptedSerializer.headers_to_redact`` names
them and ``redact_headers`` does it.

This module needs ``cryptography`` (``pip install 'taskq[encryption]'``; importing it without
raises ``ExtraNotInstalled`` saying so); ``import taskq_serializers`` never imports it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping

from taskq_serializers.base import EncodeError, ExtraNotInstalled
from taskq_serializers.security_errors import (
    DecryptionFailed,
    InnerContentRefused,
    InvalidKey,
    MalformedEncryptedMessage,
    SecurityConfigurationError,
    UnknownEncryptionKey,
    UnsupportedEncryptionVersion,
)
from taskq_serializers.serialization import SerializerRegistry
from taskq_serializers.serialization import registry as default_registry

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ExtraNotInstalled("payload encryption", "cryptography", "encryption") from exc

__all__ = [
    "CONTENT_TYPE",
    "VERSION",
    "KEY_SIZE",
    "NONCE_SIZE",
    "REDACTED_HEADERS",
    "REDACTED_VALUE",
    "EncryptedSerializer",
    "generate_key",
    "redact_headers",
]

CONTENT_TYPE = "application/x-taskq-encrypted"
#: The payload layout this release writes and the only one it reads.
VERSION = 1
#: AES-256 keys are 32 bytes.
KEY_SIZE = 32
#: GCM's standard nonce size; random per message.
NONCE_SIZE = 12
_TAG_SIZE = 16

#: Headers that show task arguments in clear (``repr`` of args and kwargs), so they defeat
#: encryption unless the sender replaces them.
REDACTED_HEADERS = ("argsrepr", "kwargsrepr")
#: What ``redact_headers`` writes instead: a string, since Celery tools display these as text.
REDACTED_VALUE = "<encrypted>"


def generate_key() -> str:
    """A new random AES-256 key, base64-encoded for a setting or a secret store."""
    return base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii")


def redact_headers(headers: Mapping[str, object]) -> dict[str, object]:
    """A copy of a message's ``headers`` with the argument ``repr`` headers replaced.

    Only those present are replaced; the rest (task name, id, ETA, routing) stay as they are,
    since workers and monitors need them and encryption never covered them.
    """
    redacted = dict(headers)
    for name in REDACTED_HEADERS:
        if name in redacted:
            redacted[name] = REDACTED_VALUE
    return redacted


def _key_bytes(key_id: str, key: bytes | str) -> bytes:
    if isinstance(key, str):
        try:
            key = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidKey(f"encryption key {key_id!r} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise InvalidKey(
            f"encryption key {key_id!r} is {len(key)} bytes; AES-256 needs {KEY_SIZE} "
            f"(make one with generate_key())"
        )
    return key


def _key_id_bytes(key_id: str) -> bytes:
    encoded = key_id.encode()
    if not 1 <= len(encoded) <= 255:
        raise SecurityConfigurationError(
            f"encryption key id {key_id!r} must be 1 to 255 bytes of utf-8"
        )
    return encoded


class EncryptedSerializer:
    """Serializes with an inner serializer, then encrypts with the primary key (``encrypted``).

    ``keys`` maps key ids to 32-byte keys, raw or base64; ``primary`` is the id new messages use.
    Incoming messages decrypt with whichever key they name. ``serializer`` is the inner format,
    looked up in ``registry``; ``accept_inner`` names further inner formats to decode.
    The inner body is decoded with ``force=True``: the content type came out of the
    authenticated ciphertext, so only a key holder chose it.
    """

    name: str = "encrypted"
    content_type: str = CONTENT_TYPE
    content_encoding: str = "binary"
    #: Headers the sending app must pass through ``redact_headers``.
    headers_to_redact: tuple[str, ...] = REDACTED_HEADERS

    def __init__(
        self,
        keys: Mapping[str, bytes | str],
        primary: str,
        *,
        serializer: str = "json",
        accept_inner: Iterable[str] = (),
        registry: SerializerRegistry | None = None,
    ) -> None:
        if primary not in keys:
            known = ", ".join(repr(key_id) for key_id in keys) or "none"
            raise SecurityConfigurationError(
                f"primary encryption key {primary!r} is not among the keys given ({known})"
            )
        self._ciphers: dict[bytes, AESGCM] = {
            _key_id_bytes(key_id): AESGCM(_key_bytes(key_id, key)) for key_id, key in keys.items()
        }
        primary_id = _key_id_bytes(primary)
        self._header = bytes((VERSION, len(primary_id))) + primary_id
        self._primary = self._ciphers[primary_id]
        self._registry = registry if registry is not None else default_registry
        self._serializer = serializer
        self._accepted_inner = frozenset(
            self._inner_content_type(name) for name in (serializer, *accept_inner)
        )

    def _inner_content_type(self, name: str) -> str:
        content_type = self._registry.get(name).content_type
        if content_type == self.content_type:
            raise SecurityConfigurationError(
                "the encrypted serializer cannot wrap itself: pick another inner serializer"
            )
        return content_type

    def dumps(self, obj: object, /) -> bytes:
        """Serialize ``obj`` with the inner serializer and encrypt it under the primary key."""
        content_type, content_encoding, body = self._registry.dumps(
            obj, serializer=self._serializer
        )
        plaintext = _frame(content_type) + _frame(content_encoding) + body
        nonce = os.urandom(NONCE_SIZE)
        return self._header + nonce + self._primary.encrypt(nonce, plaintext, self._header)

    def loads(self, data: bytes, /) -> object:
        """Decrypt ``data`` with the key it names, then decode the inner body."""
        if len(data) < 2:
            raise MalformedEncryptedMessage("encrypted payload is truncated: no header")
        if data[0] != VERSION:
            raise UnsupportedEncryptionVersion(
                f"encrypted payload has version {data[0]}; this release reads version {VERSION}"
            )
        header_end = 2 + data[1]
        key_id = data[2:header_end]
        if len(data) < header_end + NONCE_SIZE + _TAG_SIZE or not key_id:
            raise MalformedEncryptedMessage(
                f"encrypted payload is truncated: {len(data)} bytes cannot hold a key id, "
                f"nonce and tag"
            )
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownEncryptionKey(
                f"encrypted with key id {key_id.decode(errors='replace')!r}, which this receiver "
                f"does not hold (rotated out too early, or never shared)"
            )
        nonce = data[header_end : header_end + NONCE_SIZE]
        try:
            plaintext = cipher.decrypt(nonce, data[header_end + NONCE_SIZE :], data[:header_end])
        except InvalidTag:
            raise DecryptionFailed(
                f"encrypted payload (key id {key_id.decode(errors='replace')!r}) fails "
                f"authentication: it was changed, or made with a different key under that id"
            ) from None
        content_type, rest = _unframe(plaintext, "content type")
        content_encoding, body = _unframe(rest, "content encoding")
        if content_type not in self._accepted_inner:
            accepted = ", ".join(sorted(self._accepted_inner))
            raise InnerContentRefused(
                f"encrypted message wraps {content_type!r}, but this receiver decodes only "
                f"{accepted} inside encrypted messages (add it to accept_inner)"
            )
        return self._registry.loads(body, content_type, content_encoding, force=True)


def _frame(text: str) -> bytes:
    encoded = text.encode("ascii")
    if len(encoded) > 255:
        raise EncodeError(f"inner content type or encoding {text[:40]!r}... exceeds 255 bytes")
    return bytes((len(encoded),)) + encoded


def _unframe(data: bytes, what: str) -> tuple[str, bytes]:
    """Split one length-prefixed field off ``data``; reached only after authentication passed."""
    if not data or len(data) < 1 + data[0]:
        raise MalformedEncryptedMessage(f"decrypted payload is truncated in its {what}")
    end = 1 + data[0]
    try:
        return data[1:end].decode("ascii"), data[end:]
    except UnicodeDecodeError:
        raise MalformedEncryptedMessage(f"decrypted payload's {what} is not ascii") from None
