"""Payload encryption: round trips, key rotation, and every refusal of a changed payload."""

from __future__ import annotations

import base64
import os
import pickle
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskq_serializers.base import ContentDisallowed, DecodeError, EncodeError, SerializationError
from taskq_serializers.encryption import (
    CONTENT_TYPE,
    KEY_SIZE,
    NONCE_SIZE,
    VERSION,
    EncryptedSerializer,
    generate_key,
    redact_headers,
)
from taskq_serializers.security_errors import (
    DecryptionFailed,
    InnerContentRefused,
    InvalidKey,
    MalformedEncryptedMessage,
    SecurityConfigurationError,
    SecurityError,
    UnknownEncryptionKey,
    UnsupportedEncryptionVersion,
)
from taskq_serializers.serialization import SerializerRegistry

SECRET = "card 4111-1111-1111-1111"
PAYLOAD: dict[str, Any] = {"args": [SECRET, 2], "kwargs": {"note": "Åse ✓"}}
K1 = os.urandom(KEY_SIZE)
K2 = os.urandom(KEY_SIZE)


@pytest.fixture
def registry() -> SerializerRegistry:
    return SerializerRegistry.with_defaults()


@pytest.fixture
def encrypted(registry: SerializerRegistry) -> EncryptedSerializer:
    return EncryptedSerializer({"k1": K1}, "k1", registry=registry)


def test_round_trip_hides_the_payload(encrypted: EncryptedSerializer) -> None:
    data = encrypted.dumps(PAYLOAD)
    assert encrypted.loads(data) == PAYLOAD
    assert SECRET.encode() not in data
    assert b"application/json" not in data  # the inner format is inside the ciphertext too
    assert (encrypted.name, encrypted.content_type, encrypted.content_encoding) == (
        "encrypted",
        "application/x-taskq-encrypted",
        "binary",
    )


def test_payload_layout(encrypted: EncryptedSerializer) -> None:
    data = encrypted.dumps(PAYLOAD)
    assert (data[0], data[1], data[2:4]) == (VERSION, 2, b"k1")
    # After the header and nonce: the framed content type and encoding, the body, a 16-byte tag.
    framing = b"\x10application/json\x05utf-8"
    body = SerializerRegistry.with_defaults().dumps(PAYLOAD)[2]
    assert len(data) == 4 + NONCE_SIZE + len(framing) + len(body) + 16


def test_each_message_gets_a_fresh_nonce(encrypted: EncryptedSerializer) -> None:
    first, second = encrypted.dumps(PAYLOAD), encrypted.dumps(PAYLOAD)
    assert first[4 : 4 + NONCE_SIZE] != second[4 : 4 + NONCE_SIZE]
    assert first != second


def test_keys_as_base64_and_generate_key(registry: SerializerRegistry) -> None:
    key = generate_key()
    assert len(base64.b64decode(key, validate=True)) == KEY_SIZE
    assert generate_key() != key
    by_text = EncryptedSerializer({"main": key}, "main", registry=registry)
    by_bytes = EncryptedSerializer({"main": base64.b64decode(key)}, "main", registry=registry)
    assert by_bytes.loads(by_text.dumps(PAYLOAD)) == PAYLOAD


def test_key_rotation(registry: SerializerRegistry) -> None:
    before = EncryptedSerializer({"k1": K1}, "k1", registry=registry)
    old_message = before.dumps(PAYLOAD)
    # Step 1: every receiver learns k2 while still encrypting with k1.
    # Step 2: the primary moves to k2; old messages still decrypt, new ones use k2.
    during = EncryptedSerializer({"k1": K1, "k2": K2}, "k2", registry=registry)
    assert during.loads(old_message) == PAYLOAD
    new_message = during.dumps(PAYLOAD)
    assert new_message[2:4] == b"k2"
    assert during.loads(new_message) == PAYLOAD
    # A receiver that never learnt k2 says so.
    with pytest.raises(UnknownEncryptionKey, match="'k2'"):
        before.loads(new_message)
    # Step 3: k1 is dropped; a leftover k1 message fails clearly instead of decoding as garbage.
    after = EncryptedSerializer({"k2": K2}, "k2", registry=registry)
    assert after.loads(new_message) == PAYLOAD
    with pytest.raises(UnknownEncryptionKey, match="key id 'k1'"):
        after.loads(old_message)


def test_inner_serializer_and_accept_inner(registry: SerializerRegistry) -> None:
    msgpack_sends = EncryptedSerializer({"k1": K1}, "k1", serializer="msgpack", registry=registry)
    data = msgpack_sends.dumps(PAYLOAD)
    assert msgpack_sends.loads(data) == PAYLOAD
    json_only = EncryptedSerializer({"k1": K1}, "k1", registry=registry)
    with pytest.raises(InnerContentRefused, match="application/x-msgpack"):
        json_only.loads(data)
    both = EncryptedSerializer({"k1": K1}, "k1", accept_inner=["msgpack"], registry=registry)
    assert both.loads(data) == PAYLOAD


def test_through_the_registry(encrypted: EncryptedSerializer, registry: SerializerRegistry) -> None:
    registry.register(encrypted)
    content_type, content_encoding, body = registry.dumps(PAYLOAD, serializer="encrypted")
    assert (content_type, content_encoding) == (CONTENT_TYPE, "binary")
    with pytest.raises(ContentDisallowed):
        registry.loads(body, content_type, content_encoding)  # not in accept_content
    # Accepting only encrypted content still decodes the json inside it.
    registry.disable_insecure(allowed=["encrypted"])
    assert registry.loads(body, content_type, content_encoding, accept=["encrypted"]) == PAYLOAD
    with pytest.raises(ContentDisallowed):
        registry.loads(b"{}", "application/json", "utf-8", accept=["encrypted", "json"])


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "position",
    [4, 4 + NONCE_SIZE, -20, -1],
    ids=["nonce", "ciphertext-start", "ciphertext-end", "tag"],
)
def test_tampering_is_refused(encrypted: EncryptedSerializer, position: int) -> None:
    data = bytearray(encrypted.dumps(PAYLOAD))
    data[position] ^= 0x01
    with pytest.raises(DecryptionFailed, match="fails authentication"):
        encrypted.loads(bytes(data))


def test_header_is_authenticated(registry: SerializerRegistry) -> None:
    # Relabelling a k1 message as k2 (a key the receiver holds) is caught: the header is AAD.
    both = EncryptedSerializer({"k1": K1, "k2": K2}, "k1", registry=registry)
    data = both.dumps(PAYLOAD)
    with pytest.raises(DecryptionFailed, match="'k2'"):
        both.loads(data[:2] + b"k2" + data[4:])


def test_same_key_id_different_key(
    encrypted: EncryptedSerializer, registry: SerializerRegistry
) -> None:
    other = EncryptedSerializer({"k1": K2}, "k1", registry=registry)
    with pytest.raises(DecryptionFailed):
        other.loads(encrypted.dumps(PAYLOAD))


def test_wrong_version_is_refused(encrypted: EncryptedSerializer) -> None:
    data = encrypted.dumps(PAYLOAD)
    with pytest.raises(
        UnsupportedEncryptionVersion, match="version 2; this release reads version 1"
    ):
        encrypted.loads(bytes([2]) + data[1:])


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 4 + NONCE_SIZE, 4 + NONCE_SIZE + 15])
def test_truncation_is_refused(encrypted: EncryptedSerializer, length: int) -> None:
    with pytest.raises(MalformedEncryptedMessage, match="truncated"):
        encrypted.loads(encrypted.dumps(PAYLOAD)[:length])


def test_truncated_ciphertext_fails_authentication(encrypted: EncryptedSerializer) -> None:
    with pytest.raises(DecryptionFailed):
        encrypted.loads(encrypted.dumps(PAYLOAD)[:-1])


def test_zero_length_key_id_is_refused(encrypted: EncryptedSerializer) -> None:
    data = encrypted.dumps(PAYLOAD)
    with pytest.raises(MalformedEncryptedMessage):
        encrypted.loads(bytes([VERSION, 0]) + data[4:])


def test_plain_json_is_refused(encrypted: EncryptedSerializer) -> None:
    with pytest.raises(UnsupportedEncryptionVersion):
        encrypted.loads(b'{"args": [1]}')


@pytest.mark.parametrize(
    ("keys", "primary", "error", "match"),
    [
        ({"k1": b"short"}, "k1", InvalidKey, "is 5 bytes; AES-256 needs 32"),
        ({"k1": "not base64!"}, "k1", InvalidKey, "not valid base64"),
        ({"k1": base64.b64encode(os.urandom(16)).decode()}, "k1", InvalidKey, "is 16 bytes"),
        (
            {"k1": K1},
            "k2",
            SecurityConfigurationError,
            r"primary encryption key 'k2' is not among the keys given \('k1'\)",
        ),
        ({}, "k1", SecurityConfigurationError, r"\(none\)"),
        ({"": K1}, "", SecurityConfigurationError, "1 to 255 bytes"),
        ({"x" * 256: K1}, "x" * 256, SecurityConfigurationError, "1 to 255 bytes"),
    ],
    ids=["short", "bad-base64", "aes128", "primary-missing", "no-keys", "empty-id", "long-id"],
)
def test_bad_configuration_is_refused(
    registry: SerializerRegistry,
    keys: dict[str, bytes | str],
    primary: str,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        EncryptedSerializer(keys, primary, registry=registry)


def test_key_is_never_in_an_error_message(registry: SerializerRegistry) -> None:
    key = base64.b64encode(os.urandom(31)).decode()
    with pytest.raises(InvalidKey) as raised:
        EncryptedSerializer({"k1": key}, "k1", registry=registry)
    assert key not in str(raised.value)


def test_cannot_wrap_itself(encrypted: EncryptedSerializer, registry: SerializerRegistry) -> None:
    registry.register(encrypted)
    with pytest.raises(SecurityConfigurationError, match="cannot wrap itself"):
        EncryptedSerializer({"k1": K1}, "k1", serializer="encrypted", registry=registry)


def test_unencodable_object_is_an_encode_error(encrypted: EncryptedSerializer) -> None:
    with pytest.raises(EncodeError):
        encrypted.dumps(object())


def test_errors_are_typed_and_pickle() -> None:
    assert issubclass(MalformedEncryptedMessage, DecodeError)
    assert issubclass(UnsupportedEncryptionVersion, MalformedEncryptedMessage)
    for error in (
        MalformedEncryptedMessage,
        UnsupportedEncryptionVersion,
        UnknownEncryptionKey,
        DecryptionFailed,
    ):
        assert issubclass(error, SecurityError)
        assert issubclass(error, SerializationError)
        copy = pickle.loads(pickle.dumps(error("why")))
        assert (type(copy), str(copy)) == (error, "why")


# -- what encryption does not cover ---------------------------------------------------------------


def test_redact_headers(encrypted: EncryptedSerializer) -> None:
    headers: dict[str, object] = {
        "task": "proj.charge",
        "id": "abc",
        "argsrepr": repr((SECRET, 2)),
        "kwargsrepr": "{}",
    }
    redacted = redact_headers(headers)
    assert redacted == {
        "task": "proj.charge",
        "id": "abc",
        "argsrepr": "<encrypted>",
        "kwargsrepr": "<encrypted>",
    }
    assert headers["argsrepr"] == repr((SECRET, 2))  # a copy; the caller's dict is untouched
    assert redact_headers({"task": "t"}) == {"task": "t"}  # absent headers are not invented
    assert encrypted.headers_to_redact == ("argsrepr", "kwargsrepr")


def test_missing_cryptography_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['cryptography'] = None\n"
        "import taskq_serializers.serialization\n"
        "try:\n"
        "    import taskq_serializers.encryption\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "ExtraNotInstalled" in result.stdout
    assert "pip install 'taskq[encryption]'" in result.stdout


@given(data=st.binary(max_size=128))
def test_arbitrary_bytes_raise_only_security_errors(data: bytes) -> None:
    receiver = EncryptedSerializer({"k1": K1}, "k1", registry=SerializerRegistry.with_defaults())
    with pytest.raises(SecurityError):
        receiver.loads(data)
