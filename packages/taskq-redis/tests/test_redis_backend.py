"""The Redis result backend beyond the conformance suite: what it writes where, SUCCESS kept
for every serializer, one shared subscriber, and waiting through lost connections."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from taskq.contracts import BackendError, BackendOptions
from taskq_protocol import ResultMeta, exception_to_dict, states
from taskq_redis.backend import RedisBackend
from taskq_testing.concurrency import run_in_threads
from taskq_testing.factories import make_failure, make_meta
from taskq_testing.waiting import wait_until

OpenBackend = Callable[..., RedisBackend]

SERIALIZERS = {
    "json": "application/json",
    "msgpack": "application/x-msgpack",
    "pickle": "application/x-python-serialize",
    "yaml": "application/x-yaml",
}


def _new_id() -> str:
    return str(uuid.uuid4())


def _open(url: str, opened: list[RedisBackend], **fields: Any) -> RedisBackend:
    options = fields.pop("transport_options", {})
    serializer = fields.pop("serializer", "json")
    backend = RedisBackend(
        url,
        BackendOptions(
            transport_options=options,
            serializer=serializer,
            accept=frozenset({SERIALIZERS[serializer]}),
            **fields,
        ),
    )
    opened.append(backend)
    return backend


@pytest.fixture
def open_backend(redis_url: str) -> Iterator[OpenBackend]:
    """Backends on the shared Redis (keys kept apart by fresh uuids)."""
    opened: list[RedisBackend] = []
    yield lambda **fields: _open(redis_url, opened, **fields)
    for backend in opened:
        backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# -- what is written where --------------------------------------------------------------------


def test_meta_key_holds_celery_meta_with_result_expires(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend(expires=600)
    meta = make_meta(result={"answer": 42}, group_id=_new_id())
    backend.store(meta)
    key = f"celery-task-meta-{meta.task_id}"
    stored = json.loads(raw.get(key) or b"")
    assert stored["status"] == "SUCCESS"
    assert stored["result"] == {"answer": 42}
    assert stored["task_id"] == meta.task_id
    assert stored["group_id"] == meta.group_id
    assert 590 <= raw.ttl(key) <= 600


@pytest.mark.parametrize(
    ("expires", "low_ms", "high_ms"),
    [(None, -1, -1), (2.5, 2000, 2500), (3600, 3590_000, 3600_000)],
    ids=["none-keeps-forever", "fraction-in-ms", "whole-seconds"],
)
def test_expiry_per_store(
    open_backend: OpenBackend,
    raw: redis.Redis,
    expires: float | None,
    low_ms: int,
    high_ms: int,
) -> None:
    backend = open_backend(expires=expires)
    meta = make_meta(result=1)
    backend.store(meta)
    key = f"celery-task-meta-{meta.task_id}"
    try:
        assert low_ms <= raw.pttl(key) <= high_ms
    finally:
        raw.delete(key)


def test_every_state_write_is_published_on_the_key(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend()
    task_id = _new_id()
    key = f"celery-task-meta-{task_id}"
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(key)
    try:
        wait_until(lambda: raw.pubsub_numsub(key)[0][1] == 1, 2.0, message="subscribed")
        backend.store(make_meta(states.STARTED, task_id=task_id))
        backend.store(make_meta(states.SUCCESS, "done", task_id=task_id))
        payloads: list[bytes] = []
        deadline = time.monotonic() + 2.0
        while len(payloads) < 2 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                payloads.append(message["data"])
        assert [json.loads(p)["status"] for p in payloads] == ["STARTED", "SUCCESS"]
        assert payloads[-1] == raw.get(key)
    finally:
        pubsub.close()


@pytest.mark.parametrize(
    ("prefix", "key_prefix"),
    [
        ("tenant", "tenant_celery-task-meta-"),
        ("tenant:", "tenant:celery-task-meta-"),
        ("tenant_", "tenant_celery-task-meta-"),
        ("tenant-", "tenant-celery-task-meta-"),
        ("tenant.", "tenant.celery-task-meta-"),
    ],
)
def test_global_keyprefix_as_celery_applies_it(
    open_backend: OpenBackend, raw: redis.Redis, prefix: str, key_prefix: str
) -> None:
    backend = open_backend(transport_options={"global_keyprefix": prefix})
    meta = make_meta(result=1)
    backend.store(meta)
    group_id = _new_id()
    backend.save_group(group_id, [[group_id, None], [[[meta.task_id, None], None]]])
    try:
        assert raw.exists(key_prefix + meta.task_id)
        group_key = key_prefix.replace("celery-task-meta-", "celery-taskset-meta-") + group_id
        assert json.loads(raw.get(group_key) or b"")["result"][0] == [group_id, None]
        assert backend.get(meta.task_id) == meta
        unprefixed = open_backend()
        assert unprefixed.get(meta.task_id) is None
    finally:
        raw.delete(key_prefix + meta.task_id)


# -- a SUCCESS stays, whatever the serializer ------------------------------------------------


@pytest.mark.parametrize("serializer", list(SERIALIZERS))
def test_success_is_kept_for_every_serializer(open_backend: OpenBackend, serializer: str) -> None:
    backend = open_backend(serializer=serializer)
    first = make_meta(states.SUCCESS, {"text": "the good result"})
    backend.store(first)
    for later in (states.STARTED, states.FAILURE, states.SUCCESS):
        backend.store(make_meta(later, "late", task_id=first.task_id))
    backend.store_many([make_meta(states.RETRY, "late", task_id=first.task_id)])
    assert backend.get(first.task_id) == first


@pytest.mark.parametrize("serializer", list(SERIALIZERS))
def test_the_word_success_in_a_result_is_not_a_success(
    open_backend: OpenBackend, serializer: str
) -> None:
    # The script's shortcut looks for the text SUCCESS; here it is there but the state is not.
    backend = open_backend(serializer=serializer)
    task_id = _new_id()
    backend.store(make_meta(states.STARTED, {"progress": "SUCCESS so far"}, task_id=task_id))
    failure = make_failure(RuntimeError("SUCCESS was not to be"), task_id=task_id)
    backend.store(failure)
    assert backend.get(task_id) == failure
    backend.store(make_meta(states.STARTED, task_id=task_id))
    got = backend.get(task_id)
    assert got is not None
    assert got.status == states.STARTED


def test_a_stored_value_nobody_can_read_is_replaced(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    # cjson fails on it, so the script hands it back; the caller cannot read it either, so it
    # is not a SUCCESS worth keeping.
    backend = open_backend()
    task_id = _new_id()
    key = f"celery-task-meta-{task_id}"
    raw.set(key, b'{"status": "SUCCESS", "result": [broken')
    try:
        backend.store(make_meta(states.SUCCESS, 2, task_id=task_id))
        got = backend.get(task_id)
        assert got is not None
        assert got.result == 2
    finally:
        raw.delete(key)


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_success_wins_a_race_with_started(open_backend: OpenBackend, serializer: str) -> None:
    # pickle takes the compare-and-set path, json the script's own check.
    writers = [open_backend(serializer=serializer) for _ in range(4)]
    ids = [_new_id() for _ in range(40)]
    together = threading.Barrier(len(writers))

    def write(index: int) -> None:
        status = states.SUCCESS if index == 0 else states.STARTED
        for task_id in ids:
            together.wait(5)
            # A STARTED first, so the SUCCESS finds a value it must look at.
            writers[index].store(make_meta(status, {"by": index}, task_id=task_id))

    run_in_threads(write, len(writers))
    lost = [i for i in ids if (m := writers[0].get(i)) is None or m.status != states.SUCCESS]
    assert lost == []


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_store_many_writes_in_order_and_skips_stored_successes(
    open_backend: OpenBackend, serializer: str
) -> None:
    backend = open_backend(serializer=serializer)
    done, fresh, twice = _new_id(), _new_id(), _new_id()
    backend.store(make_meta(states.SUCCESS, "kept", task_id=done))
    backend.store(make_meta(states.STARTED, task_id=fresh))
    batch = [
        make_meta(states.FAILURE, exception_to_dict(KeyError("x")), task_id=done),
        make_meta(states.SUCCESS, "fresh", task_id=fresh),
        make_meta(states.STARTED, task_id=twice),
        make_meta(states.SUCCESS, "second write wins", task_id=twice),
        make_meta(states.STARTED, task_id=twice),  # after its SUCCESS: ignored
    ]
    backend.store_many(batch)
    assert [(m.status, m.result) for m in map(backend.get, (done, fresh, twice)) if m] == [
        (states.SUCCESS, "kept"),
        (states.SUCCESS, "fresh"),
        (states.SUCCESS, "second write wins"),
    ]


def test_store_many_is_one_script_call(start_redis: Callable[..., Any]) -> None:
    server = start_redis()
    opened: list[RedisBackend] = []
    backend = _open(server.url, opened)
    client = redis.Redis.from_url(server.url)
    try:
        backend.store(make_meta(result=0))  # loads the script
        client.config_resetstat()
        backend.store_many(make_meta(result=i) for i in range(100))
        stats = client.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1
        assert stats["cmdstat_publish"]["calls"] == 100  # run by the script
    finally:
        client.close()
        backend.close()


# -- waiting ------------------------------------------------------------------------------------


def test_many_waiting_threads_share_one_subscriber_connection(
    start_redis: Callable[..., Any],
) -> None:
    server = start_redis()
    opened: list[RedisBackend] = []
    waiter, writer = _open(server.url, opened), _open(server.url, opened)
    client = redis.Redis.from_url(server.url)
    metas = [make_meta(result=i) for i in range(8)]
    try:

        def wait(index: int) -> ResultMeta | None:
            return waiter.wait([metas[index].task_id], 10).get(metas[index].task_id)

        def subscribers() -> int:
            return sum(1 for c in client.client_list() if int(c.get("sub", 0)) > 0)

        results: list[ResultMeta | None] = []
        runner = threading.Thread(target=lambda: results.extend(run_in_threads(wait, 8)))
        runner.start()
        wait_until(
            lambda: (
                sum(
                    n
                    for _, n in client.pubsub_numsub(
                        *(f"celery-task-meta-{m.task_id}" for m in metas)
                    )
                )
                == 8
            ),
            5.0,
            message="every waiter subscribed",
        )
        assert subscribers() == 1
        writer.store_many(metas)
        runner.join(10)
        assert results == metas
    finally:
        client.close()
        for backend in opened:
            backend.close()


def test_wait_never_misses_a_result_stored_as_it_starts(open_backend: OpenBackend) -> None:
    # Subscribe first, then read: a write that lands anywhere around the subscription is seen.
    waiter, writer = open_backend(), open_backend()
    for round_ in range(150):
        meta = make_meta(result=round_)
        pause = (round_ % 15) * 0.0001
        storing = threading.Timer(pause, writer.store, (meta,))
        storing.start()
        got = waiter.wait([meta.task_id], 5)
        storing.join()
        assert got == {meta.task_id: meta}, f"round {round_}: missed"


def test_wait_ignores_states_that_are_not_ready(open_backend: OpenBackend) -> None:
    waiter, writer = open_backend(), open_backend()
    task_id = _new_id()
    done = make_meta(states.SUCCESS, "finally", task_id=task_id)

    def progress() -> None:
        for status in (states.STARTED, states.RETRY, states.STARTED):
            writer.store(make_meta(status, task_id=task_id))
            time.sleep(0.02)
        writer.store(done)

    worker = threading.Thread(target=progress)
    worker.start()
    assert waiter.wait([task_id], 5) == {task_id: done}
    worker.join()


def test_close_wakes_a_waiting_thread(open_backend: OpenBackend) -> None:
    backend = open_backend()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            backend.wait([_new_id()], None)
        except BackendError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=wait)
    waiting.start()
    time.sleep(0.2)
    backend.close()
    waiting.join(5)
    assert not waiting.is_alive()
    assert len(errors) == 1


def _wait_in_child(backend: RedisBackend, task_id: str, answer: Any) -> None:
    got = backend.wait([task_id], 10).get(task_id)
    answer.put(None if got is None else got.result)


def test_a_forked_child_waits_with_its_own_subscriber(open_backend: OpenBackend) -> None:
    backend, writer = open_backend(), open_backend()
    warm = make_meta(result="parent")
    writer.store(warm)
    assert backend.wait([warm.task_id], 5) == {warm.task_id: warm}  # the parent's subscriber
    meta = make_meta(result="child")
    context = multiprocessing.get_context("fork")
    answer = context.Queue()
    child = context.Process(target=_wait_in_child, args=(backend, meta.task_id, answer))
    child.start()
    time.sleep(0.2)
    writer.store(meta)
    assert answer.get(timeout=10) == "child"
    child.join(10)
    assert child.exitcode == 0
    # The parent's subscriber still works after the child went away.
    later = make_meta(result="parent again")
    threading.Timer(0.1, writer.store, (later,)).start()
    assert backend.wait([later.task_id], 5) == {later.task_id: later}


# -- lost connections ---------------------------------------------------------------------------


def test_calls_work_again_after_a_restart(start_redis: Callable[..., Any]) -> None:
    server = start_redis()
    opened: list[RedisBackend] = []
    backend = _open(server.url, opened)
    try:
        first = make_meta(result=1)
        backend.store(first)
        assert backend.wait([first.task_id], 5) == {first.task_id: first}
        server.restart()
        second = make_meta(result=2)
        backend.store(second)
        assert backend.get(second.task_id) == second
        assert backend.wait([second.task_id], 5) == {second.task_id: second}
    finally:
        backend.close()


def test_a_blocked_wait_survives_a_restart(start_redis: Callable[..., Any]) -> None:
    server = start_redis()
    opened: list[RedisBackend] = []
    waiter, writer = _open(server.url, opened), _open(server.url, opened)
    meta = make_meta(result="after the restart")
    got: dict[str, ResultMeta] = {}
    try:
        waiting = threading.Thread(target=lambda: got.update(waiter.wait([meta.task_id], 20)))
        waiting.start()
        time.sleep(0.3)
        server.restart(down_for=0.5)
        writer.store(meta)
        waiting.join(20)
        assert got == {meta.task_id: meta}
    finally:
        for backend in opened:
            backend.close()


def test_a_result_written_while_the_subscriber_was_away_is_read_again(
    start_redis: Callable[..., Any],
) -> None:
    # The subscriber's connection is killed and the result written without a PUBLISH, as if the
    # message went out while the subscriber was away: only the re-read after resubscribing
    # can find it.
    server = start_redis()
    opened: list[RedisBackend] = []
    waiter = _open(server.url, opened)
    client = redis.Redis.from_url(server.url)
    meta = make_meta(result="found by the re-read")
    got: dict[str, ResultMeta] = {}
    try:
        waiting = threading.Thread(target=lambda: got.update(waiter.wait([meta.task_id], 10)))
        waiting.start()
        key = f"celery-task-meta-{meta.task_id}"
        wait_until(lambda: client.pubsub_numsub(key)[0][1] == 1, 5.0, message="subscribed")
        pipe = client.pipeline(transaction=False)
        pipe.client_kill_filter(_type="pubsub")
        pipe.set(key, waiter.codec.encode_meta(meta))
        pipe.execute()
        waiting.join(10)
        assert got == {meta.task_id: meta}
    finally:
        client.close()
        waiter.close()


def test_retries_run_out_into_a_backend_error(start_redis: Callable[..., Any]) -> None:
    server = start_redis()
    opened: list[RedisBackend] = []
    policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.05, "interval_max": 0.1}
    backend = _open(server.url, opened, transport_options={"retry_policy": policy})
    try:
        backend.store(make_meta(result=1))
        server.stop()
        with pytest.raises(BackendError, match="after 2 retries"):
            backend.store(make_meta(result=2))
    finally:
        backend.close()
