"""What the consumer reads of a message on receipt, and what waits for the process running it."""

from __future__ import annotations

import pickle
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from taskq import TaskQ
from taskq.contracts import DEAD_LETTER_REASON_HEADER, Delivery
from taskq_protocol import Envelope, TaskMessage, jsoncodec
from taskq_worker.decoding import Decoder, Received, Undeliverable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import RunningWorker, dead_letters, make_envelope, memory_app, sqlite_app


def _receive(envelope: Envelope) -> Received:
    return Decoder(["json"]).receive(Delivery(queue="celery", envelope=envelope, tag="t1"))


def test_the_headers_are_read_and_the_model_waits() -> None:
    eta = datetime.now(timezone.utc) + timedelta(seconds=30)
    message = TaskMessage.create(
        "proj.add", [1, 2], {"z": 3}, eta=eta, expires=eta, time_limit=10, soft_time_limit=5
    )
    headers, properties, body = message.encode()
    envelope = Envelope.create(
        jsoncodec.dumps(body),
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        properties=properties,
    )
    received = _receive(envelope)
    assert (received.name, received.id) == ("proj.add", message.id)
    assert received.eta == pytest.approx(eta.timestamp())
    assert received.expires == pytest.approx(eta.timestamp())
    assert received.timelimit == (10, 5)
    assert received._message is None  # pyright: ignore[reportPrivateUsage]
    whole = received.message
    assert (whole.args, whole.kwargs, whole.headers.eta) == ([1, 2], {"z": 3}, eta)
    assert received.message is whole  # built once


def test_a_naive_eta_is_utc_as_celery_writes_it() -> None:
    envelope = make_envelope("proj.add", headers={"eta": "2030-01-02T03:04:05"})
    expected = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    assert _receive(envelope).eta == expected


def test_pickling_sends_the_raw_parts_not_the_model() -> None:
    received = _receive(make_envelope("proj.add", [4, 5]))
    assert received.message.args == [4, 5]  # built in this process
    copy = pickle.loads(pickle.dumps(received))
    assert copy._message is None  # pyright: ignore[reportPrivateUsage]
    assert (copy.name, copy.id, copy.timelimit) == (received.name, received.id, (None, None))
    assert copy.message.args == [4, 5]


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"retries": "twice"}, "headers.retries"),
        ({"timelimit": [1, "x"]}, "headers.timelimit"),
        ({"eta": "tomorrow"}, "headers.eta"),
        ({"task": 3}, "headers.task"),
    ],
)
def test_what_the_model_refuses_is_undeliverable_when_built(
    headers: dict[str, Any], field: str
) -> None:
    envelope = make_envelope("proj.add", headers=headers)
    try:
        received = _receive(envelope)
    except Undeliverable as exc:  # a header the consumer needs: refused on receipt
        reason = str(exc)
    else:
        with pytest.raises(Undeliverable) as caught:
            received.message
        reason = str(caught.value)
    assert reason.startswith("cannot decode: MalformedMessage")
    assert field in reason


def test_a_protocol_v1_message_is_read_whole_on_receipt() -> None:
    body = {"task": "proj.add", "id": "v1-id", "args": [1], "kwargs": {}, "retries": 0}
    envelope = Envelope.create(
        jsoncodec.dumps(body), content_type="application/json", content_encoding="utf-8"
    )
    received = _receive(envelope)
    assert (received.name, received.id) == ("proj.add", "v1-id")
    assert received._message is not None  # pyright: ignore[reportPrivateUsage]
    assert received.message.args == [1]


def test_what_cannot_be_deserialized_is_refused_on_receipt() -> None:
    with pytest.raises(Undeliverable, match="DecodeError"):
        _receive(make_envelope("proj.add", body=b"[1, "))


# -- in a worker ----------------------------------------------------------------------------


@pytest.fixture(params=["solo", "threads", "prefork"])
def pool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(pool: str, tmp_path: Path) -> TaskQ:
    # Prefork children cannot see the parent's memory: they share a SQLite file.
    app = sqlite_app(tmp_path) if pool == "prefork" else memory_app()

    @app.task(name="tests.late")
    def late(x: int) -> int:
        return x

    @app.task(name="tests.early", acks_late=False)
    def early(x: int) -> int:
        return x

    return app


def test_a_message_the_model_refuses_is_dead_lettered_either_way(app: TaskQ, pool: str) -> None:
    """Acked late, it is refused where it runs; acked early, on receipt (before the ack)."""
    bad_late = make_envelope("tests.late", [1], headers={"retries": "twice"})
    bad_early = make_envelope("tests.early", [1], headers={"retries": "twice"})
    for envelope in (bad_late, bad_early):
        app.transport.publish("celery", envelope)
    good = app.tasks["tests.late"].delay(7)
    worker = RunningWorker(app, pool=pool, concurrency=2).start()
    try:
        assert good.get(timeout=5) == 7
        letters = dead_letters(app.transport, count=2)
    finally:
        assert worker.stop() == 0
    reasons = {
        d.envelope.headers["id"]: d.envelope.headers[DEAD_LETTER_REASON_HEADER] for d in letters
    }
    for envelope in (bad_late, bad_early):
        assert "MalformedMessage: headers.retries" in reasons[envelope.headers["id"]]
    time.sleep(0.05)
    assert app.transport.queue_length("celery") == 0
