"""The worker's small parts on their own: names, banner, settings, decoding, revokes, limits."""

from __future__ import annotations

import logging
import signal
import time

import pytest

from taskq import TaskQ
from taskq.context import Request, pop_request, push_request
from taskq.contracts import Delivery
from taskq.exceptions import ImproperlyConfigured
from taskq_protocol import Envelope, TaskMessage, jsoncodec
from taskq_worker.banner import banner, mask_url
from taskq_worker.control import parse_signal
from taskq_worker.decoding import Decoder, Received, Undeliverable
from taskq_worker.jobs import Job, Policy
from taskq_worker.log import WorkerFormatter, get_task_logger, parse_level
from taskq_worker.naming import node_name
from taskq_worker.ratelimit import RateLimits, TokenBucket
from taskq_worker.revoked import RevokedIds
from taskq_worker.settings import WorkerSettings, resolve

# -- node names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "taskq@web1.example.com"),
        ("", "taskq@web1.example.com"),
        ("worker1@%h", "worker1@web1.example.com"),
        ("worker1@%n", "worker1@web1"),
        ("%n-mail@%d", "web1-mail@example.com"),
        ("box", "taskq@box"),  # Celery: a name without @ is the host
        ("%h", "taskq@web1.example.com"),
        ("a%%b@%h", "a%b@web1.example.com"),
    ],
)
def test_node_name(given: str | None, expected: str) -> None:
    assert node_name(given, "web1.example.com") == expected


# -- banner ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:secret@localhost:6379/0", "redis://:****@localhost:6379/0"),
        ("amqp://guest:guest@rabbit//", "amqp://guest:****@rabbit//"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("sqlite:///taskq.sqlite3", "sqlite:///taskq.sqlite3"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_banner_says_where_the_default_broker_is() -> None:
    text = banner(
        node="taskq@h",
        version="0.1.0",
        app="proj",
        broker="sqlite:///taskq.sqlite3",
        results=None,
        broker_is_default=True,
        pool="prefork",
        concurrency=4,
        queues=["celery"],
        tasks=["proj.b", "proj.a"],
    )
    assert "embedded SQLite file taskq.sqlite3" in text
    assert "results:      disabled" in text
    assert text.index("proj.a") < text.index("proj.b")


# -- settings -------------------------------------------------------------------------------------


_OPTIONS = (
    "pool",
    "concurrency",
    "queues",
    "exclude_queues",
    "prefetch_multiplier",
    "max_tasks_per_child",
    "max_memory_per_child",
    "time_limit",
    "soft_time_limit",
)


def _resolve(app: TaskQ, **given: object) -> WorkerSettings:
    options: dict[str, object] = {name: given.get(name) for name in _OPTIONS}
    return resolve(app, **options)  # pyright: ignore[reportArgumentType]


def test_settings_fall_back_to_the_configuration() -> None:
    app = TaskQ(
        "t",
        broker="memory://",
        worker_pool="threads",
        worker_concurrency=3,
        worker_prefetch_multiplier=2,
        task_time_limit=10,
    )
    settings = _resolve(app, queues="a, b,a")
    assert settings.pool == "threads"
    assert settings.concurrency == 3
    assert settings.prefetch_limit == 6
    assert settings.queues == ("a", "b")
    assert settings.time_limit == 10.0
    assert _resolve(app, pool="solo", concurrency=8).concurrency == 1
    assert _resolve(app, prefetch_multiplier=0).prefetch_limit == 3


@pytest.mark.parametrize(
    ("given", "setting"),
    [
        ({"concurrency": 0}, "worker_concurrency"),
        ({"prefetch_multiplier": -1}, "worker_prefetch_multiplier"),
        ({"time_limit": 1, "soft_time_limit": 2}, "task_soft_time_limit"),
        ({"max_tasks_per_child": 0}, "worker_max_tasks_per_child"),
        ({"queues": [1]}, "queues"),
    ],
)
def test_bad_settings_name_themselves(given: dict[str, object], setting: str) -> None:
    app = TaskQ("t", broker="memory://", worker_pool="threads")
    with pytest.raises(ImproperlyConfigured) as error:
        _resolve(app, **given)
    assert error.value.setting.startswith(setting)


@pytest.mark.parametrize(
    ("level", "expected"), [("INFO", logging.INFO), ("debug", logging.DEBUG), (30, 30)]
)
def test_parse_level(level: str | int, expected: int) -> None:
    assert parse_level(level) == expected


def test_parse_level_refuses_nonsense() -> None:
    with pytest.raises(ImproperlyConfigured, match="loglevel"):
        parse_level("LOUD")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, signal.SIGTERM), ("SIGKILL", signal.SIGKILL), ("kill", signal.SIGKILL), (9, 9)],
)
def test_parse_signal(value: object, expected: int) -> None:
    assert parse_signal(value) == expected


def test_parse_signal_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="SIGNOPE"):
        parse_signal("SIGNOPE")


# -- decoding -------------------------------------------------------------------------------------


def _delivery(envelope: Envelope) -> Delivery:
    return Delivery(queue="celery", envelope=envelope, tag="t1")


def test_decoder_reads_compressed_messages() -> None:
    from taskq_serializers import compress

    message = TaskMessage.create("proj.add", [1, 2])
    headers, properties, body = message.encode()
    payload, headers["compression"] = compress(jsoncodec.dumps(body), "zlib")
    envelope = Envelope.create(
        payload,
        content_type="application/json",
        content_encoding="utf-8",
        headers=headers,
        properties=properties,
    )
    decoded = Decoder(["json"]).decode(_delivery(envelope))
    assert decoded.args == [1, 2]
    assert decoded.name == "proj.add"


def test_decoder_refuses_with_a_reason() -> None:
    envelope = Envelope.create(b"{", content_type="application/json", content_encoding="utf-8")
    with pytest.raises(Undeliverable, match=r"^cannot decode: DecodeError"):
        Decoder(["json"]).decode(_delivery(envelope))


def test_decoder_refuses_a_misconfigured_accept_content() -> None:
    with pytest.raises(ImproperlyConfigured, match="accept_content"):
        Decoder(["jsn"])


# -- revoked ids ----------------------------------------------------------------------------------


def test_revoked_ids_are_bounded_in_number() -> None:
    revoked = RevokedIds(maxlen=3)
    revoked.add(["a", "b", "c", "d"])
    assert "a" not in revoked
    assert revoked.ids() == ["b", "c", "d"]


def test_revoked_ids_expire() -> None:
    revoked = RevokedIds(expires=0.05)
    revoked.add(["a"])
    assert "a" in revoked
    time.sleep(0.06)
    assert "a" not in revoked
    assert len(revoked) == 0


# -- rate limits ----------------------------------------------------------------------------------


def test_token_bucket() -> None:
    bucket = TokenBucket(10.0)
    now = time.monotonic()
    assert bucket.take(now) == 0.0
    assert bucket.take(now) == pytest.approx(0.1)
    assert bucket.take(now + 0.1) == 0.0


def _job(name: str, task_id: str) -> Job:
    message = TaskMessage.create(name, [], id=task_id)
    envelope = Envelope.create(b"", content_type="application/json", content_encoding="utf-8")
    policy = Policy(True, True, False, None, None)
    headers, properties, body = message.encode()
    received = Received(headers, properties, body, message)
    return Job(Delivery("celery", envelope, task_id), received, policy, 0.0)


def test_rate_limits_hold_jobs_in_order_and_release_them_on_time() -> None:
    limits = RateLimits({"slow": 10.0, "fast": None}.get)
    now = time.monotonic()
    assert limits.admit(_job("slow", "1"), now)
    assert not limits.admit(_job("slow", "2"), now)
    assert not limits.admit(_job("slow", "3"), now)
    assert limits.admit(_job("fast", "4"), now), "other types are not held up"
    assert limits.next_due() == pytest.approx(now + 0.1)
    assert limits.release(now + 0.05) == []
    assert [j.id for j in limits.release(now + 0.1)] == ["2"]
    assert [j.id for j in limits.release(now + 0.21)] == ["3"]
    assert not limits
    assert limits.next_due() is None


def test_rate_limits_can_be_changed_and_waiting_jobs_removed() -> None:
    limits = RateLimits({"slow": 1.0}.get)
    now = time.monotonic()
    for task_id in "123":
        limits.admit(_job("slow", task_id), now)
    removed = limits.remove(lambda job: job.id != "2")
    assert [j.id for j in removed] == ["2"]
    limits.set_rate("slow", None)
    assert [j.id for j in limits.release(now)] == ["3"]


# -- logging --------------------------------------------------------------------------------------


def test_task_logger_lines_carry_the_running_task() -> None:
    logger = get_task_logger("tests.worker.tasklog")
    formatter = WorkerFormatter("%(message)s", "%(task_name)s[%(task_id)s]: %(message)s")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)  # whatever other tests left on the root logger
    try:
        push_request(Request(id="abc", task="proj.add"))
        try:
            logger.warning("inside")
        finally:
            pop_request()
        logger.warning("outside")
        logging.getLogger("tests.worker.plain").warning("plain")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert [formatter.format(r) for r in records] == ["proj.add[abc]: inside", "???[???]: outside"]
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", None, None)
    assert formatter.format(plain) == "plain"
