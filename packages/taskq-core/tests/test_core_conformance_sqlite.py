"""The SQLite transport and result backend pass taskq-testing's conformance suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskq.backends.sqlite import SQLiteBackend
from taskq.contracts import BackendOptions, ResultBackend, Transport
from taskq.transports.sqlite import SQLiteTransport
from taskq_testing.backend import BackendConformance, BackendOpener
from taskq_testing.transport import TransportConformance, TransportOpener


class TestSQLiteTransport(TransportConformance):
    @pytest.fixture
    def open_transport(self, tmp_path: Path) -> TransportOpener:
        url = f"sqlite:///{tmp_path / 'taskq.sqlite3'}"

        def open_transport(*, visibility_timeout: float | None = None) -> Transport:
            options = (
                {} if visibility_timeout is None else {"visibility_timeout": visibility_timeout}
            )
            return SQLiteTransport(url, options)

        return open_transport


class TestSQLiteBackend(BackendConformance):
    @pytest.fixture
    def open_backend(self, tmp_path: Path) -> BackendOpener:
        url = f"sqlite:///{tmp_path / 'taskq.sqlite3'}"

        def open_backend(options: BackendOptions) -> ResultBackend:
            return SQLiteBackend(url, options)

        return open_backend
