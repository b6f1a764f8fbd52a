"""Chord bookkeeping in Redis: Celery 5.7.0's keys, counted once per part, claimed by one part
until the body is sent, and expired only when the chord stops moving."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis

from taskq.contracts import BackendOptions, ChordPart
from taskq_protocol import ResultMeta, states
from taskq_redis.backend import RedisBackend
from taskq_redis.chords import DEFAULT_CHORD_EXPIRES
from taskq_testing.concurrency import run_in_threads
from taskq_testing.factories import make_failure, make_meta

OpenBackend = Callable[..., RedisBackend]


def _new_id() -> str:
    return str(uuid.uuid4())


def _plain(group_id: str, index: int | None, result: Any = None) -> ChordPart:
    """A part as the worker reports it: task id, state, result and group, nothing more."""
    task_id = _new_id()
    meta = ResultMeta(
        task_id, states.SUCCESS, index if result is None else result, group_id=group_id
    )
    return ChordPart(group_id, task_id, index, meta)


def _keys(group_id: str) -> dict[str, str]:
    base = f"celery-taskset-meta-{group_id}"
    return {suffix: base + suffix for suffix in (".j", ".t", ".s", ".d", ".c", ".m")}


@pytest.fixture
def open_backend(redis_url: str) -> Iterator[OpenBackend]:
    opened: list[RedisBackend] = []

    def open_backend(**fields: Any) -> RedisBackend:
        backend = RedisBackend(redis_url, BackendOptions(**fields))
        opened.append(backend)
        return backend

    yield open_backend
    for backend in opened:
        backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# -- the keys, as Celery keeps them ---------------------------------------------------------


def test_parts_are_kept_in_celerys_keys(open_backend: OpenBackend, raw: redis.Redis) -> None:
    backend = open_backend()
    group_id = _new_id()
    keys = _keys(group_id)
    parts = [_plain(group_id, i, {"value": i}) for i in range(3)]
    backend.set_chord_size(group_id, 3)
    assert raw.get(keys[".s"]) == b"3"
    backend.chord_part_done(parts[2])
    backend.chord_part_done(parts[0])
    assert raw.type(keys[".j"]) == b"zset"
    members = cast("list[tuple[bytes, float]]", raw.zrange(keys[".j"], 0, -1, withscores=True))
    assert [(json.loads(m), score) for m, score in members] == [
        ([1, parts[0].task_id, "SUCCESS", {"value": 0}], 0.0),
        ([1, parts[2].task_id, "SUCCESS", {"value": 2}], 2.0),
    ]
    assert raw.smembers(keys[".d"]) == {
        f"{parts[0].task_id}:0".encode(),
        f"{parts[2].task_id}:2".encode(),
    }
    assert not raw.exists(keys[".m"]), "plain parts need no full metas"
    done = backend.chord_part_done(parts[1], lease=20)
    assert done == [p.meta for p in parts]
    # Claimed by the completing task for the lease; the parts stay until the body is sent.
    assert raw.get(keys[".c"]) == parts[1].task_id.encode()
    assert 19_000 <= raw.pttl(keys[".c"]) <= 20_000
    assert raw.exists(keys[".j"], keys[".s"], keys[".d"]) == 3
    backend.chord_body_sent(group_id)
    assert raw.exists(keys[".j"], keys[".t"], keys[".s"], keys[".d"], keys[".m"]) == 0
    assert raw.get(keys[".c"]) == b"done"
    assert 290 <= raw.ttl(keys[".c"]) <= 300


def test_unordered_chords_keep_a_list_in_arrival_order(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend(transport_options={"result_chord_ordered": False})
    group_id = _new_id()
    parts = [_plain(group_id, i) for i in range(3)]
    backend.set_chord_size(group_id, 3)
    backend.chord_part_done(parts[2])
    backend.chord_part_done(parts[0])
    assert raw.type(_keys(group_id)[".j"]) == b"list"
    done = backend.chord_part_done(parts[1])
    assert done == [parts[2].meta, parts[0].meta, parts[1].meta]


def test_a_part_without_index_scores_infinity_and_comes_last(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend()
    group_id = _new_id()
    loose, first = _plain(group_id, None, "loose"), _plain(group_id, 0, "first")
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(loose)
    scored = cast(
        "list[tuple[bytes, float]]", raw.zrange(_keys(group_id)[".j"], 0, -1, withscores=True)
    )
    assert [score for _, score in scored] == [float("inf")]
    assert raw.sismember(_keys(group_id)[".d"], f"{loose.task_id}:+inf")
    assert backend.chord_part_done(first) == [first.meta, loose.meta]


def test_full_metas_come_back_as_reported(open_backend: OpenBackend, raw: redis.Redis) -> None:
    backend = open_backend()
    group_id = _new_id()
    ok = make_meta(result=1, group_id=group_id)
    failed = make_failure(ValueError("bad"), traceback="Traceback ...", group_id=group_id)
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(ChordPart(group_id, ok.task_id, 0, ok))
    assert raw.hlen(_keys(group_id)[".m"]) == 1  # the date_done is more than .j holds
    done = backend.chord_part_done(ChordPart(group_id, failed.task_id, 1, failed))
    assert done == [ok, failed]


def test_dynamically_added_parts_count(open_backend: OpenBackend, raw: redis.Redis) -> None:
    # Celery's Task.add_to_chord increments .t; the chord then waits for one more part.
    backend = open_backend()
    group_id = _new_id()
    parts = [_plain(group_id, i) for i in range(3)]
    backend.set_chord_size(group_id, 2)
    raw.incr(_keys(group_id)[".t"])
    assert backend.chord_part_done(parts[0]) is None
    assert backend.chord_part_done(parts[1]) is None
    assert backend.chord_part_done(parts[2]) == [p.meta for p in parts]


# -- once per part, once per chord ------------------------------------------------------------


def test_a_part_reported_twice_counts_once_and_keeps_its_first_result(
    open_backend: OpenBackend,
) -> None:
    backend = open_backend()
    group_id = _new_id()
    first, second = _plain(group_id, 0, "first run"), _plain(group_id, 1)
    rerun = ChordPart(
        group_id,
        first.task_id,
        0,
        ResultMeta(first.task_id, states.SUCCESS, "second run", group_id=group_id),
    )
    backend.set_chord_size(group_id, 2)
    assert backend.chord_part_done(first) is None
    assert backend.chord_part_done(rerun) is None, "a duplicate completed the chord"
    assert backend.chord_part_done(second) == [first.meta, second.meta]


def test_late_duplicates_after_the_chord_fired_change_nothing(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend()
    group_id = _new_id()
    parts = [_plain(group_id, i) for i in range(2)]
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(parts[0])
    assert backend.chord_part_done(parts[1]) is not None
    backend.chord_body_sent(group_id)
    for part in parts:
        assert backend.chord_part_done(part) is None
    assert not raw.exists(_keys(group_id)[".j"]), "a late duplicate recreated the chord"


def test_setting_the_size_again_starts_a_new_run(open_backend: OpenBackend) -> None:
    # Celery reapplies a frozen chord under the same group id: set_chord_size clears the claim.
    backend = open_backend()
    group_id = _new_id()
    for _ in range(2):
        parts = [_plain(group_id, i) for i in range(2)]
        backend.set_chord_size(group_id, 2)
        assert backend.chord_part_done(parts[0]) is None
        assert backend.chord_part_done(parts[1]) == [p.meta for p in parts]
        backend.chord_body_sent(group_id)


def test_a_claim_held_by_a_celery_worker_is_respected(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    # Celery's script claims .c with a random token while its worker publishes the body; a
    # taskq part that completes the count meanwhile must not fire the body a second time.
    backend = open_backend()
    group_id = _new_id()
    parts = [_plain(group_id, i) for i in range(2)]
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(parts[0])
    raw.set(_keys(group_id)[".c"], uuid.uuid4().hex, ex=10)
    try:
        assert backend.chord_part_done(parts[1]) is None
    finally:
        raw.delete(*_keys(group_id).values())


# A child reporting parts, as a separate worker process does. A fresh interpreter, not fork():
# forking the test process, which holds other suites' threads and locks, could hang the child.
_REPORTER = """
import json, sys
from taskq.contracts import BackendOptions, ChordPart
from taskq_protocol import ResultMeta, states
from taskq_redis.backend import RedisBackend

url, group_id, parts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
backend = RedisBackend(url, BackendOptions())
try:
    for task_id, index in parts:
        meta = ResultMeta(task_id, states.SUCCESS, index, group_id=group_id)
        done = backend.chord_part_done(ChordPart(group_id, task_id, index, meta))
        if done is not None:
            backend.chord_body_sent(group_id)  # as the worker does, once it sent the body
            print(json.dumps([task_id, [m.task_id for m in done]]), flush=True)
finally:
    backend.close()
"""


def test_parts_from_many_processes_fire_the_chord_once(
    open_backend: OpenBackend, redis_url: str
) -> None:
    backend = open_backend()
    size, processes = 30, 5
    group_id = _new_id()
    parts = [_plain(group_id, i) for i in range(size)]
    backend.set_chord_size(group_id, size)
    # Every part goes to two processes: each header task is delivered twice.
    shares = [
        [
            (p.task_id, p.group_index)
            for i, p in enumerate(parts)
            if i % processes in (n, (n + 1) % processes)
        ]
        for n in range(processes)
    ]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _REPORTER, redis_url, group_id, json.dumps(share)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    fired = []
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        fired += [json.loads(line) for line in out.splitlines() if line.strip()]
    # Only the claiming task may complete it again (its own duplicate, before it was marked
    # done); every completion hands out every part.
    assert fired, "the chord never fired"
    assert len({claimant for claimant, _ in fired}) == 1
    assert all(ids == [p.task_id for p in parts] for _, ids in fired)


def test_parts_from_many_threads_and_backends_fire_the_chord_once(
    open_backend: OpenBackend,
) -> None:
    size, threads = 40, 8
    group_id = _new_id()
    parts = [_plain(group_id, i) for i in range(size)]
    reporters = [open_backend() for _ in range(threads)]
    reporters[0].set_chord_size(group_id, size)

    def report(index: int) -> list[str]:
        claims: list[str] = []
        for part in parts[index::threads] + parts[(index + 1) % threads :: threads]:
            if reporters[index].chord_part_done(part) is not None:
                claims.append(part.task_id)
                reporters[index].chord_body_sent(group_id)
        return claims

    claims = [claim for found in run_in_threads(report, threads) for claim in found]
    assert claims, "the chord never fired"
    assert len(set(claims)) == 1, "two different parts fired the chord"


# -- expiry -----------------------------------------------------------------------------------


def test_chord_keys_outlive_a_short_result_expires(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend(expires=1)
    group_id = _new_id()
    keys = _keys(group_id)
    parts = [_plain(group_id, i) for i in range(2)]
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(parts[0])
    for suffix in (".j", ".s", ".d"):
        assert DEFAULT_CHORD_EXPIRES - 10 <= raw.ttl(keys[suffix]) <= DEFAULT_CHORD_EXPIRES
    meta = make_meta(result="short-lived")
    backend.store(meta)
    assert raw.pttl(f"celery-task-meta-{meta.task_id}") <= 1000  # results do expire
    time.sleep(1.3)
    assert backend.get(meta.task_id) is None
    assert backend.chord_part_done(parts[1]) == [p.meta for p in parts], "the chord expired"


def test_every_part_renews_the_chord_expiry(open_backend: OpenBackend, raw: redis.Redis) -> None:
    backend = open_backend(transport_options={"result_chord_expires": 30})
    group_id = _new_id()
    keys = _keys(group_id)
    parts = [_plain(group_id, i) for i in range(3)]
    backend.set_chord_size(group_id, 3)
    assert 29 <= raw.ttl(keys[".s"]) <= 30
    raw.expire(keys[".s"], 5)  # as if time passed
    backend.chord_part_done(parts[0])
    for suffix in (".j", ".s", ".d"):
        assert 29 <= raw.ttl(keys[suffix]) <= 30
    raw.delete(*keys.values())


def test_without_result_expires_chord_keys_do_not_expire(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend(expires=None)
    group_id = _new_id()
    keys = _keys(group_id)
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(_plain(group_id, 0))
    try:
        assert raw.ttl(keys[".s"]) == -1
        assert raw.ttl(keys[".j"]) == -1
    finally:
        raw.delete(*keys.values())


def test_a_saved_header_group_outlives_the_chord(
    open_backend: OpenBackend, raw: redis.Redis
) -> None:
    backend = open_backend(expires=7200, transport_options={"result_chord_expires": 60})
    group_id = _new_id()
    backend.save_group(group_id, [[group_id, None], []])
    backend.set_chord_size(group_id, 2)
    backend.chord_part_done(_plain(group_id, 0))
    group_key = f"celery-taskset-meta-{group_id}"
    try:
        assert 7190 <= raw.ttl(group_key) <= 7200
        assert 50 <= raw.ttl(_keys(group_id)[".j"]) <= 60
    finally:
        raw.delete(group_key, *_keys(group_id).values())
