"""The SQLite transport and backend under real processes sharing one file.

Each child is a fresh interpreter (``python -c``), as separate worker and client processes
are; what they print is what they saw.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from taskq.backends.sqlite import SQLiteBackend
from taskq.contracts import DEAD_LETTER_REASON_HEADER, BackendOptions
from taskq.transports.sqlite import SQLiteTransport
from taskq_protocol import Envelope, ResultMeta, states

PRELUDE = """
import sys, time
from taskq.transports.sqlite import SQLiteTransport
from taskq_protocol import Envelope

def envelope(name, priority=None):
    return Envelope.create(b"[[], {}, {}]", content_type="application/json",
                           content_encoding="utf-8", headers={"id": name}, priority=priority)

url = sys.argv[1]
"""

PRODUCER = (
    PRELUDE
    + """
prefix, count = sys.argv[2], int(sys.argv[3])
transport = SQLiteTransport(url, {})
names = [f"{prefix}-{i}" for i in range(count)]
half = count // 2
for name in names[:half]:
    transport.publish("q", envelope(name))
for start in range(half, count, 10):
    transport.publish_many([("q", envelope(n), None) for n in names[start:start + 10]])
transport.close()
"""
)

# Takes up to <limit> at a time and prints "<id> <unix time> <deliveries>" per message, then
# acks or dead-letters them (<mode>); ends once idle after the stop file exists.
CONSUMER = (
    PRELUDE
    + """
import os
stop_file, mode, limit = sys.argv[2], sys.argv[3], int(sys.argv[4])
transport = SQLiteTransport(url, {})
while True:
    batch = transport.fetch(["q"], limit, 0.1)
    for d in batch:
        print(d.envelope.headers["id"], time.time(), d.deliveries, flush=True)
        if mode == "dead-letter":
            transport.dead_letter(d, f"refused by {os.getpid()}")
    if mode == "ack":
        transport.ack(batch)
    if not batch and os.path.exists(stop_file) and transport.queue_length("q") == 0:
        break
transport.close()
"""
)

# Takes five messages, says so, and waits to be killed without settling them.
DIES_HOLDING = (
    PRELUDE
    + """
transport = SQLiteTransport(url, {"visibility_timeout": 0.5})
batch = transport.fetch(["q"], 5, 5)
print(" ".join(d.envelope.headers["id"] for d in batch), flush=True)
time.sleep(60)
"""
)

SUBSCRIBER = (
    PRELUDE
    + """
expected = int(sys.argv[2])
transport = SQLiteTransport(url, {})
inbox = []
transport.subscribe("control", lambda e: inbox.append(e.headers["id"]))
print("ready", flush=True)
deadline = time.monotonic() + 10
while len(inbox) < expected and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.2)  # a duplicate would arrive now
print(" ".join(inbox), flush=True)
transport.close()
"""
)

# Children that race start together: set up, say "ready", wait for the go file (last arg).
BARRIER = """
import os, sys, time
go = sys.argv.pop()
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
"""

CHORD = (
    """
import random, sys
from datetime import datetime, timezone
from taskq.backends.sqlite import SQLiteBackend
from taskq.contracts import BackendOptions, ChordPart
from taskq_protocol import ResultMeta

url, size = sys.argv[1], int(sys.argv[2])
backend = SQLiteBackend(url, BackendOptions())
parts = [
    ChordPart("chord", f"part-{i}", i, ResultMeta(f"part-{i}", "SUCCESS", result=i,
              date_done=datetime.now(timezone.utc)))
    for i in range(size)
]
random.shuffle(parts)
backend.get("warm-up")  # connected before the race
"""
    + BARRIER
    + """
for part in parts:  # every process reports every part: each is a duplicate somewhere
    done = backend.chord_part_done(part)
    if done is not None:
        backend.chord_body_sent("chord")  # as a worker does once it sent the body
        print(part.task_id, "completed", " ".join(str(m.result) for m in done), flush=True)
backend.close()
"""
)

RESULTS = (
    """
import sys
from datetime import datetime, timezone
from taskq.backends.sqlite import SQLiteBackend
from taskq.contracts import BackendOptions
from taskq_protocol import ResultMeta

url, status, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = SQLiteBackend(url, BackendOptions())
backend.get("warm-up")
"""
    + BARRIER
    + """
for i in range(count):
    backend.store(ResultMeta(f"task-{i}", status, result=status,
                             date_done=datetime.now(timezone.utc)))
backend.close()
"""
)


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def start_together(script: str, runs: list[tuple[object, ...]], go: Path) -> list[str]:
    """Run ``script`` once per argument tuple, released at once; their outputs."""
    children = [spawn(script, *args, go) for args in runs]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    go.touch()
    return [finish(child) for child in children]


def envelope(name: str, priority: int | None = None) -> Envelope:
    return Envelope.create(
        b"[[], {}, {}]",
        content_type="application/json",
        content_encoding="utf-8",
        headers={"id": name},
        priority=priority,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/shared.db"


def received(outputs: list[str]) -> list[tuple[str, float, int]]:
    rows = [line.split() for out in outputs for line in out.splitlines()]
    return [(name, float(at), int(deliveries)) for name, at, deliveries in rows]


def test_producers_and_consumers_deliver_each_message_once(url: str, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    # Every process starts on a file that does not exist yet: they agree on the schema.
    consumers = [spawn(CONSUMER, url, stop, "ack", 10) for _ in range(3)]
    producers = [spawn(PRODUCER, url, f"p{i}", 150) for i in range(3)]
    for producer in producers:
        finish(producer)
    stop.touch()
    got = received([finish(consumer) for consumer in consumers])
    counts = Counter(name for name, _, _ in got)
    assert sorted(counts) == sorted(f"p{p}-{i}" for p in range(3) for i in range(150))
    assert set(counts.values()) == {1}, "a message was delivered twice"
    assert {deliveries for _, _, deliveries in got} == {1}
    transport = SQLiteTransport(url, {})
    assert transport.queue_length("q") == 0
    transport.close()


def test_a_killed_consumers_messages_come_back_after_the_visibility_timeout(url: str) -> None:
    transport = SQLiteTransport(url, {"visibility_timeout": 0.5})
    transport.publish_many([("q", envelope(f"m{i}"), None) for i in range(8)])
    doomed = spawn(DIES_HOLDING, url)
    assert doomed.stdout is not None
    held = doomed.stdout.readline().split()
    fetched_at = time.time()
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate(timeout=10)
    assert held == [f"m{i}" for i in range(5)]

    rest = transport.fetch(["q"], 10, 0)
    assert [d.envelope.headers["id"] for d in rest] == ["m5", "m6", "m7"]
    transport.ack(rest)
    back = []
    while len(back) < 5:
        batch = transport.fetch(["q"], 10, 3)
        assert batch, "the dead consumer's messages did not come back"
        back.extend(batch)
    assert time.time() >= fetched_at + 0.5 - 0.05
    assert [d.envelope.headers["id"] for d in back] == held
    assert {d.deliveries for d in back} == {2}
    transport.ack(back)
    assert transport.fetch(["q"], 10, 0.6) == [], "acked messages came back"
    transport.close()


def test_delayed_messages_wait_in_the_file_and_come_once(url: str, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    client = SQLiteTransport(url, {})
    eta = time.time() + 1.0
    client.publish_many([("q", envelope(f"d{i}"), eta) for i in range(6)])
    client.close()  # the publisher is gone; the messages wait in the file
    consumers = [spawn(CONSUMER, url, stop, "ack", 10) for _ in range(2)]
    time.sleep(1.3)
    stop.touch()
    got = received([finish(consumer) for consumer in consumers])
    assert sorted(name for name, _, _ in got) == [f"d{i}" for i in range(6)]
    assert all(at >= eta for _, at, _ in got), "delivered before its eta"


def test_priorities_set_by_another_process_are_honoured(url: str, tmp_path: Path) -> None:
    publisher = spawn(
        PRELUDE
        + """
t = SQLiteTransport(url, {})
for name, priority in [("a0", 0), ("b5", 5), ("c9", 9), ("d5", 5), ("e", None), ("f1", 1)]:
    t.publish("q", envelope(name, priority))
t.close()
""",
        url,
    )
    finish(publisher)
    stop = tmp_path / "stop"
    stop.touch()
    got = finish(spawn(CONSUMER, url, stop, "ack", 1))
    assert [line.split()[0] for line in got.splitlines()] == ["c9", "b5", "d5", "f1", "a0", "e"]


def test_dead_letters_from_another_process(url: str, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    transport = SQLiteTransport(url, {})
    transport.publish_many([("q", envelope(f"m{i}"), None) for i in range(3)])
    stop.touch()
    refuser = spawn(CONSUMER, url, stop, "dead-letter", 10)
    finish(refuser)
    assert transport.queue_length("q") == 0
    dead = transport.fetch(["q.dlq"], 10, 0)
    assert [d.envelope.headers["id"] for d in dead] == ["m0", "m1", "m2"]
    assert {d.envelope.headers[DEAD_LETTER_REASON_HEADER] for d in dead} == {
        f"refused by {refuser.pid}"
    }
    transport.close()


def test_a_broadcast_reaches_subscribers_in_two_processes(url: str) -> None:
    SQLiteTransport(url, {}).connect()
    subscribers = [spawn(SUBSCRIBER, url, 2) for _ in range(2)]
    for subscriber in subscribers:
        assert subscriber.stdout is not None
        assert subscriber.stdout.readline().strip() == "ready"
    sender = SQLiteTransport(url, {})
    sender.broadcast("control", envelope("ping"))
    sender.broadcast("elsewhere", envelope("not-for-them"))
    sender.broadcast("control", envelope("pong"))
    outputs = [finish(subscriber).strip() for subscriber in subscribers]
    assert outputs == ["ping pong", "ping pong"]
    sender.close()


def test_a_chord_completes_once_when_processes_report_duplicates(url: str, tmp_path: Path) -> None:
    size = 40
    backend = SQLiteBackend(url, BackendOptions())
    backend.set_chord_size("chord", size)
    outputs = start_together(CHORD, [(url, size)] * 4, tmp_path / "go")
    lines = [line.split(" ", 1) for out in outputs for line in out.splitlines()]
    # One part claims the chord; only that task's own duplicates, reported before it was
    # marked done, may get the parts again, never another part.
    assert lines, "the chord never completed"
    assert len({claimant for claimant, _ in lines}) == 1
    assert {done for _, done in lines} == {"completed " + " ".join(str(i) for i in range(size))}
    backend.close()


def test_success_stored_by_one_process_survives_another_storing_started(
    url: str, tmp_path: Path
) -> None:
    runs: list[tuple[object, ...]] = [(url, s, 200) for s in (states.STARTED, states.SUCCESS)]
    start_together(RESULTS, runs, tmp_path / "go")
    backend = SQLiteBackend(url, BackendOptions())
    finals = backend.wait([f"task-{i}" for i in range(200)], 0)
    assert len(finals) == 200
    assert {m.status for m in finals.values()} == {states.SUCCESS}
    assert isinstance(finals["task-0"], ResultMeta)
    backend.close()
