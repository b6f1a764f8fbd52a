"""What only the SQLite transport has: URLs, files, schema, the claim, fork safety, idling."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

import pytest

from taskq.contracts import (
    DEAD_LETTER_REASON_HEADER,
    Delivery,
    TransportError,
    dead_letter_queue,
)
from taskq.exceptions import ImproperlyConfigured
from taskq.transports.sqlite import SQLiteTransport
from taskq.transports.sqlite_db import database_path
from taskq.transports.sqlite_queue import claim, claim_returning, claim_select_update
from taskq_protocol import Envelope


def envelope(name: str, priority: int | None = None) -> Envelope:
    return Envelope.create(
        b"[[], {}, {}]",
        content_type="application/json",
        content_encoding="utf-8",
        headers={"id": name},
        routing_key="q",
        priority=priority,
    )


def names(deliveries: list[Delivery]) -> list[str]:
    return [d.envelope.headers["id"] for d in deliveries]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/broker.db"


# -- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite://", "taskq.sqlite3"),
        ("sqlite:///", "taskq.sqlite3"),
        ("sqlite", "taskq.sqlite3"),
        ("SQLITE://", "taskq.sqlite3"),
        ("sqlite:///relative/path.db", "relative/path.db"),
        ("sqlite:///./x.db", "x.db"),
    ],
)
def test_relative_urls_resolve_against_the_working_directory(
    given: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_path(given, TransportError) == str(tmp_path / expected)


def test_four_slashes_mean_an_absolute_path() -> None:
    assert database_path("sqlite:////var/lib/taskq/b.db", TransportError) == "/var/lib/taskq/b.db"


def test_the_path_is_fixed_when_the_transport_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    transport = SQLiteTransport("sqlite://", {})
    monkeypatch.chdir("/")
    transport.publish("q", envelope("m"))
    assert (tmp_path / "taskq.sqlite3").exists()
    transport.close()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("sqlite://host/x.db", "not a host"),
        ("sqlite:///x.db?timeout=3", "query parameters"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:///file:x.db?mode=memory", "query parameters"),
        ("sqlite:///file:x.db", "memory://"),
        ("redis://localhost", "not a sqlite:// URL"),
    ],
)
def test_urls_that_cannot_be_shared_are_refused(given: str, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        SQLiteTransport(given, {})


# -- unusable files -----------------------------------------------------------------------------


def test_a_missing_directory_names_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/broker.db"
    transport = SQLiteTransport(url, {})
    with pytest.raises(TransportError, match=rf"{url}: the directory .*missing does not exist"):
        transport.connect()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_names_the_url(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir(mode=0o500)
    url = f"sqlite:///{directory}/broker.db"
    with pytest.raises(TransportError, match=rf"{url}: cannot create .* no write permission"):
        SQLiteTransport(url, {}).connect()


def test_a_directory_in_place_of_the_file_names_the_url(tmp_path: Path) -> None:
    (tmp_path / "broker.db").mkdir()
    url = f"sqlite:///{tmp_path}/broker.db"
    with pytest.raises(TransportError, match=f"{url} .*cannot open the database"):
        SQLiteTransport(url, {}).connect()


def test_a_file_that_is_not_a_database_names_the_url(tmp_path: Path) -> None:
    (tmp_path / "broker.db").write_bytes(b"this is not SQLite" * 100)
    url = f"sqlite:///{tmp_path}/broker.db"
    with pytest.raises(TransportError, match=f"{url} .*not a database"):
        SQLiteTransport(url, {}).connect()


def test_a_file_from_another_schema_version_is_refused(url: str) -> None:
    SQLiteTransport(url, {}).connect()
    path = database_path(url, TransportError)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE taskq_schema SET version = 99 WHERE component = 'transport'")
    conn.close()
    with pytest.raises(TransportError, match="schema version 99, this taskq reads version 1"):
        SQLiteTransport(url, {}).connect()


def test_the_file_is_in_wal_mode_with_the_schema_recorded(url: str) -> None:
    transport = SQLiteTransport(url, {})
    transport.connect()
    transport.connect()  # idempotent
    conn = sqlite3.connect(transport.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT component, version FROM taskq_schema").fetchall() == [
        ("transport", 1)
    ]
    conn.close()
    transport.close()


@pytest.mark.parametrize(
    "options",
    [
        {"visibility_timeout": 0},
        {"visibility_timeout": "60"},
        {"polling_interval": -1},
        {"busy_timeout": float("inf")},
        {"broadcast_retention": True},
    ],
)
def test_bad_options_name_the_setting(options: dict[str, object], url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"broker_transport_options: .* seconds"):
        SQLiteTransport(url, options)


def test_options_for_other_brokers_are_ignored(url: str) -> None:
    transport = SQLiteTransport(url, {"visibility_timeout": 5, "queue_order_strategy": "sorted"})
    assert transport.visibility_timeout == 5.0


# -- the claim ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [claim_returning, claim_select_update])
def test_both_claims_pick_by_priority_then_id_and_hide_the_rows(strategy: object, url: str) -> None:
    transport = SQLiteTransport(url, {})
    transport.publish_many(
        [("q", envelope(f"m{i}", priority=[0, 5, 5, 9, 0][i]), None) for i in range(5)]
    )
    transport.publish("q", envelope("later"), eta=time.time() + 60)
    conn = sqlite3.connect(transport.path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    now = time.time()
    rows = strategy(conn, "q", now, now + 30, 4)  # type: ignore[operator]
    conn.execute("COMMIT")
    assert [Envelope.decode(r.payload).headers["id"] for r in rows] == ["m3", "m1", "m2", "m0"]
    assert {r.deliveries for r in rows} == {1}
    hidden = conn.execute(
        "SELECT COUNT(*) FROM taskq_messages WHERE in_flight = 1 AND visible_at >= ?",
        (now + 30,),
    ).fetchone()[0]
    assert hidden == 4
    conn.close()
    assert names(transport.fetch(["q"], 10, 0)) == ["m4"]
    transport.close()


def test_this_sqlite_uses_returning_when_it_can() -> None:
    expected = claim_returning if sqlite3.sqlite_version_info >= (3, 35) else claim_select_update
    assert claim is expected


def test_an_unreadable_row_goes_to_the_dead_letter_queue(url: str) -> None:
    transport = SQLiteTransport(url, {})
    transport.publish("q", envelope("good"))
    conn = sqlite3.connect(transport.path)
    with conn:
        conn.execute(
            "INSERT INTO taskq_messages (queue, visible_at, created_at, payload) "
            "VALUES ('q', 0, 0, X'7b6e6f74206a736f6e')"
        )
    assert names(transport.fetch(["q"], 10, 0)) == ["good"]
    assert transport.queue_length("q") == 0
    assert transport.queue_length(dead_letter_queue("q")) == 1
    row = conn.execute("SELECT payload, in_flight FROM taskq_messages WHERE queue = 'q.dlq'")
    assert row.fetchone() == (b"{not json", 0)
    conn.close()
    transport.close()


def test_dead_letters_keep_the_priority(url: str) -> None:
    transport = SQLiteTransport(url, {})
    transport.publish_many([("q", envelope("low"), None), ("q", envelope("high", 7), None)])
    for delivery in transport.fetch(["q"], 10, 0):
        transport.dead_letter(delivery, "no")
    got = transport.fetch(["q.dlq"], 10, 0)
    assert names(got) == ["high", "low"]
    assert {d.envelope.headers[DEAD_LETTER_REASON_HEADER] for d in got} == {"no"}
    transport.close()


# -- waiting and broadcasts ---------------------------------------------------------------------


def test_an_idle_fetch_does_not_burn_cpu(url: str) -> None:
    transport = SQLiteTransport(url, {})
    transport.connect()
    started_cpu, started = time.process_time(), time.monotonic()
    assert transport.fetch(["q", "r"], 10, 0.5) == []
    cpu, wall = time.process_time() - started_cpu, time.monotonic() - started
    assert wall >= 0.5
    assert cpu < 0.2 * wall, f"an idle fetch used {cpu:.3f}s of CPU in {wall:.3f}s"
    transport.close()


def test_old_broadcasts_are_pruned(url: str) -> None:
    transport = SQLiteTransport(url, {"broadcast_retention": 0.05})
    transport.broadcast("ex", envelope("old"))
    time.sleep(0.1)
    transport.broadcast("ex", envelope("new"))
    conn = sqlite3.connect(transport.path)
    assert conn.execute("SELECT COUNT(*) FROM taskq_broadcasts").fetchone()[0] == 1
    conn.close()
    transport.close()


def test_a_subscriber_keeps_polling_after_a_broken_broadcast_row(url: str) -> None:
    transport = SQLiteTransport(url, {})
    inbox: list[Envelope] = []
    transport.subscribe("ex", inbox.append)
    conn = sqlite3.connect(transport.path)
    with conn:
        conn.execute(
            "INSERT INTO taskq_broadcasts (exchange, created_at, payload) VALUES ('ex', 0, X'00')"
        )
    conn.close()
    transport.broadcast("ex", envelope("fine"))
    deadline = time.monotonic() + 3
    while not inbox and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.headers["id"] for e in inbox] == ["fine"]
    transport.close()


# -- processes ----------------------------------------------------------------------------------


def _publish_from_forked_child(transport: SQLiteTransport) -> None:
    transport.publish("child", envelope("from-child"))
    [delivery] = transport.fetch(["child"], 1, 0)
    transport.ack([delivery])
    transport.publish("q", envelope("kept"))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_uses_an_inherited_transport_safely(url: str) -> None:
    transport = SQLiteTransport(url, {})
    transport.publish("q", envelope("before"))  # the parent holds an open connection
    child = multiprocessing.get_context("fork").Process(
        target=_publish_from_forked_child, args=(transport,)
    )
    child.start()
    child.join(10)
    assert child.exitcode == 0
    assert names(transport.fetch(["q"], 10, 0)) == ["before", "kept"]
    assert transport.queue_length("child") == 0
    transport.close()
