"""Messages a worker cannot run go to the dead-letter queue with their reason; it keeps going."""

from __future__ import annotations

import datetime
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import TaskQ
from taskq.contracts import DEAD_LETTER_REASON_HEADER
from taskq_protocol import jsoncodec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import (
    RunningWorker,
    dead_letters,
    make_envelope,
    memory_app,
)


@pytest.fixture
def app() -> TaskQ:
    app = memory_app()

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _reasons(app: TaskQ, count: int) -> dict[str, str]:
    return {
        str(d.envelope.headers.get("id")): str(d.envelope.headers[DEAD_LETTER_REASON_HEADER])
        for d in dead_letters(app.transport, count=count)
    }


def test_poison_messages_are_dead_lettered_and_the_worker_carries_on(
    app: TaskQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    transport = app.transport
    bad_json = make_envelope("tests.add", body=b"{not json")
    pickled = make_envelope(
        "tests.add", body=b"\x80\x04N.", content_type="application/x-python-serialize"
    )
    unknown = make_envelope("tests.nope", [1])
    not_a_task = make_envelope("tests.add", body=jsoncodec.dumps([[1, 2], {}]))
    bad_compression = make_envelope("tests.add", headers={"compression": "application/x-gzip"})
    for envelope in (bad_json, pickled, unknown, not_a_task, bad_compression):
        transport.publish("celery", envelope)
    good = app.tasks["tests.add"].delay(2, 3)
    worker = RunningWorker(app, pool="solo").start()
    try:
        assert good.get(timeout=5) == 5
        reasons = _reasons(app, 5)
    finally:
        assert worker.stop() == 0
    assert "DecodeError" in reasons[bad_json.headers["id"]]
    assert "ContentDisallowed" in reasons[pickled.headers["id"]]
    assert "unknown task 'tests.nope'" in reasons[unknown.headers["id"]]
    assert "MalformedMessage" in reasons[not_a_task.headers["id"]]
    assert "compress" in reasons[bad_compression.headers["id"]].lower()
    line = f"Task tests.nope[{unknown.headers['id']}] moved to dead-letter queue celery.dlq: "
    assert line in caplog.text
    assert app.transport.queue_length("celery") == 0


def test_an_unreadable_message_without_headers_is_named_by_its_delivery(app: TaskQ) -> None:
    envelope = make_envelope("tests.add", body=b"[")
    envelope.headers.clear()
    app.transport.publish("celery", envelope)
    worker = RunningWorker(app, pool="solo").start()
    try:
        [dead] = dead_letters(app.transport)
    finally:
        worker.stop()
    assert dead.envelope.headers[DEAD_LETTER_REASON_HEADER].startswith("cannot decode")


def test_a_message_delivered_too_often_is_dead_lettered(app: TaskQ) -> None:
    app.conf.worker_max_deliveries = 2
    envelope = make_envelope("tests.add", [1, 1])
    transport = app.transport
    transport.publish("celery", envelope)
    for _ in range(2):  # two deliveries that never finished (a worker killed each time)
        [delivery] = transport.fetch(["celery"], 1, 1.0)
        transport.reject(delivery, requeue=True)
    worker = RunningWorker(app, pool="solo").start()
    try:
        [dead] = dead_letters(transport)
    finally:
        worker.stop()
    reason = dead.envelope.headers[DEAD_LETTER_REASON_HEADER]
    assert "delivered 3 times, more than worker_max_deliveries (2)" in reason
    assert app.AsyncResult(envelope.headers["id"]).state == "PENDING", "it never ran"


# -- signed messages ----------------------------------------------------------------------------


def _identity(name: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def trusted_signing() -> Iterator[tuple[object, object]]:
    """The default registry verifies signatures from "alice" only (as ``setup_security``
    arranges); yields alice's and mallory's signers, each on a private registry."""
    pytest.importorskip("cryptography")
    from taskq_serializers import SerializerRegistry, registry
    from taskq_serializers.auth import AuthSerializer

    alice, mallory = _identity("alice"), _identity("mallory")
    registry.register(AuthSerializer(alice[0], alice[1], alice[1]))
    try:
        yield (
            AuthSerializer(*alice, alice[1], registry=SerializerRegistry.with_defaults()),
            AuthSerializer(*mallory, mallory[1], registry=SerializerRegistry.with_defaults()),
        )
    finally:
        registry.unregister("auth")


def test_an_unverifiable_signature_is_dead_lettered(
    trusted_signing: tuple[object, object],
) -> None:
    from taskq_serializers.auth import AuthSerializer

    alice, mallory = trusted_signing
    assert isinstance(alice, AuthSerializer)
    assert isinstance(mallory, AuthSerializer)
    app = memory_app(accept_content=["auth"], result_accept_content=["json"])

    @app.task(name="tests.add")
    def add(x: int, y: int) -> int:
        return x + y

    payload = [[20, 22], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    signed = make_envelope("tests.add", body=alice.dumps(payload), content_type="application/data")
    forged = make_envelope(
        "tests.add", body=mallory.dumps(payload), content_type="application/data"
    )
    app.transport.publish("celery", forged)
    app.transport.publish("celery", signed)
    worker = RunningWorker(app, pool="solo").start()
    try:
        assert app.AsyncResult(signed.headers["id"]).get(timeout=5) == 42
        [dead] = dead_letters(app.transport)
    finally:
        worker.stop()
    assert dead.envelope.headers["id"] == forged.headers["id"]
    assert "mallory" in dead.envelope.headers[DEAD_LETTER_REASON_HEADER]


def test_unknown_task_signal_fires() -> None:
    from taskq import signals

    app = memory_app()
    seen: list[str] = []

    def record(name: str = "", **_: object) -> None:
        seen.append(name)

    signals.task_unknown.connect(record)
    try:
        app.transport.publish("celery", make_envelope("tests.missing", task_id=str(uuid.uuid4())))
        worker = RunningWorker(app, pool="solo").start()
        try:
            dead_letters(app.transport)
        finally:
            worker.stop()
    finally:
        signals.task_unknown.disconnect(record)
    assert seen == ["tests.missing"]
