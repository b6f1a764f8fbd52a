"""What only the SQLite result backend has: files, options, pruning, many ids, a shared file."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from taskq.backends.sqlite import SQLiteBackend
from taskq.contracts import BackendError, BackendOptions, ChordPart
from taskq.exceptions import ImproperlyConfigured
from taskq.transports.sqlite import SQLiteTransport
from taskq_protocol import ResultMeta, ResultRef, states


def meta(task_id: str | None = None, status: str = states.SUCCESS) -> ResultMeta:
    return ResultMeta(
        task_id or str(uuid.uuid4()), status, result=1, date_done=datetime.now(timezone.utc)
    )


def test_a_missing_directory_names_the_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nowhere/results.db"
    backend = SQLiteBackend(url, BackendOptions())
    with pytest.raises(BackendError, match=f"{url}: the directory"):
        backend.get("t")


def test_bad_options_name_the_setting(tmp_path: Path) -> None:
    options = BackendOptions(transport_options={"polling_interval": "fast"})
    with pytest.raises(ImproperlyConfigured, match="result_backend_transport_options: polling"):
        SQLiteBackend(f"sqlite:///{tmp_path}/r.db", options)


def test_expired_rows_are_deleted_by_a_later_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    first = SQLiteBackend(url, BackendOptions(expires=0.05))
    first.store_many([meta(), meta()])
    first.save_group("g", ResultRef("g", children=()).as_tuple())
    first.set_chord_size("c", 2)
    first.chord_part_done(ChordPart("c", "part", 0, meta("part")))
    time.sleep(0.1)
    kept = meta()
    SQLiteBackend(url, BackendOptions(expires=None)).store(kept)  # a fresh instance prunes
    conn = sqlite3.connect(first.path)
    counts = [
        conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("taskq_results", "taskq_groups", "taskq_chords", "taskq_chord_parts")
    ]
    conn.close()
    # Chords outlive a short result_expires (a day at least), so theirs stay.
    assert counts == [1, 0, 1, 1]
    first.close()


def test_wait_for_more_ids_than_one_statement_holds(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path}/r.db", BackendOptions())
    metas = [meta() for _ in range(1234)]
    backend.store_many(metas)
    got = backend.wait([m.task_id for m in metas], 1)
    assert got == {m.task_id: m for m in metas}
    backend.close()


def test_broker_and_results_share_the_default_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    transport = SQLiteTransport("sqlite://", {})
    backend = SQLiteBackend("sqlite://", BackendOptions())
    transport.connect()
    stored = meta()
    backend.store(stored)
    assert transport.path == backend.path == str(tmp_path / "taskq.sqlite3")
    conn = sqlite3.connect(backend.path)
    assert conn.execute("SELECT * FROM taskq_schema ORDER BY component").fetchall() == [
        ("backend", 2),
        ("transport", 1),
    ]
    conn.close()
    assert backend.get(stored.task_id) == stored
    transport.close()
    backend.close()


def test_a_closed_backend_opens_again_on_use(tmp_path: Path) -> None:
    backend = SQLiteBackend(f"sqlite:///{tmp_path}/r.db", BackendOptions())
    stored = meta()
    backend.store(stored)
    backend.close()
    assert backend.get(stored.task_id) == stored
    backend.close()
