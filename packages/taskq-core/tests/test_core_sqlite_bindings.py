"""The SQLite transport's routing table (``taskq_bindings``) in files written before it
existed: opening such a file adds the table instead of refusing the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskq.contracts import QueueSpec
from taskq.transports.sqlite import SQLiteTransport
from taskq.transports.sqlite_queue import SCHEMA
from taskq_protocol import Envelope


def _old_file(path: Path) -> None:
    """A version-1 transport file as taskq wrote it before ``taskq_bindings``."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE taskq_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    for statement in SCHEMA.statements:
        conn.execute(statement)
    conn.execute("INSERT INTO taskq_schema VALUES ('transport', ?)", (SCHEMA.version,))
    conn.commit()
    conn.close()


def test_a_file_without_the_bindings_table_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    transport = SQLiteTransport(f"sqlite:///{path}", {})
    transport.connect()
    try:
        transport.declare_queue(QueueSpec(name="replies", exchange="reply.x", routing_key="oid"))
        envelope = Envelope.create(b"{}", content_type="application/json", content_encoding="utf-8")
        assert transport.send_direct("reply.x", "oid", envelope)
        [delivery] = transport.fetch(["replies"], 1, 5.0)
        transport.ack([delivery])
    finally:
        transport.close()
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT version FROM taskq_schema WHERE component = 'transport'")
    assert version.fetchone() == (SCHEMA.version,)
    conn.close()


def test_bindings_are_shared_between_instances(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    client, worker = SQLiteTransport(url, {}), SQLiteTransport(url, {})
    try:
        client.declare_queue(QueueSpec(name="q", exchange="ex", routing_key="k"))
        client.declare_queue(QueueSpec(name="q", exchange="ex", routing_key="k"))  # idempotent
        envelope = Envelope.create(b"{}", content_type="application/json", content_encoding="utf-8")
        assert worker.send_direct("ex", "k", envelope)
        assert client.queue_length("q") == 1, "declaring twice binds once"
        client.delete_queue("q")
        assert not worker.send_direct("ex", "k", envelope)
    finally:
        client.close()
        worker.close()
