"""The errors message signing (``auth``) and payload encryption raise.

Each refusal has its own class, so a worker can log, count and dead-letter by reason: a message
from an unknown signer calls for a different fix (add the certificate to the store) than one with
a bad signature (someone changed it on the broker). They all derive from ``SecurityError``, and
that from ``SerializationError``, so code that handles every decode failure catches them too.
Each carries only its message, so it pickles across a process pool unchanged. A missing
``cryptography`` raises the package's ``ExtraNotInstalled``, naming ``taskq[auth]`` or
``taskq[encryption]``.
"""

from __future__ import annotations

from taskq_serializers.base import DecodeError, SerializationError

__all__ = [
    "SecurityError",
    "SecurityConfigurationError",
    "InvalidKey",
    "InvalidCertificate",
    "UnsignedMessage",
    "MalformedSignedMessage",
    "UnknownSigner",
    "CertificateExpired",
    "BadSignature",
    "InnerContentRefused",
    "MalformedEncryptedMessage",
    "UnsupportedEncryptionVersion",
    "UnknownEncryptionKey",
    "DecryptionFailed",
]


class SecurityError(SerializationError):
    """Base of every signing and encryption error."""


class SecurityConfigurationError(SecurityError, ValueError):
    """A signing or encryption setting that cannot work; raised at start, naming the setting."""


class InvalidKey(SecurityConfigurationError):
    """Key material that cannot be used: not PEM, wrong password, not RSA, wrong size."""


class InvalidCertificate(SecurityConfigurationError):
    """A certificate or certificate store that cannot be used: not PEM X.509, not RSA, empty."""


# Signing (auth) refusals, in the order the verifier meets them.


class UnsignedMessage(SecurityError, DecodeError):
    """The body is not a signed envelope at all (not base64, or no signature fields).

    Usually a message sent without the ``auth`` serializer but labelled ``application/data``,
    which is also what a message without any content type is read as.
    """


class MalformedSignedMessage(SecurityError, DecodeError):
    """The body has the signed envelope's shape but a field in it is corrupt."""


class UnknownSigner(SecurityError):
    """The signer named in the message has no certificate in the trusted store."""


class CertificateExpired(SecurityError):
    """The certificate is past its ``notAfter`` date, so its key no longer vouches for anything."""


class BadSignature(SecurityError):
    """The signature does not match the body: the message was changed after it was signed."""


class InnerContentRefused(SecurityError):
    """A verified or decrypted message wraps an inner content type this receiver does not accept.

    In a signed message the inner content type travels beside the signed body, not inside it, so
    it is checked against the receiver's own list (``accept_inner``) instead of being trusted.
    Encrypted messages get the same check, so both serializers decode only what was configured.
    """


# Encryption refusals.


class MalformedEncryptedMessage(SecurityError, DecodeError):
    """An encrypted payload that is truncated or whose framing is wrong."""


class UnsupportedEncryptionVersion(MalformedEncryptedMessage):
    """An encrypted payload whose version byte this release does not know."""


class UnknownEncryptionKey(SecurityError):
    """An encrypted payload names a key id this receiver does not hold (rotated out, never had)."""


class DecryptionFailed(SecurityError):
    """Authenticated decryption failed: the payload was changed or encrypted with another key."""
