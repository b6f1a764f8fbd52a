# pyright: strict
"""The pytest plugin taskq's own suites and its users' suites load (entry point ``pytest11``).

It registers the ``needs_server`` marker and the rule that a test whose server is missing
*skips* on a developer's machine but *fails* in CI (``CI=true``), so a green CI run never means
"nothing ran". :func:`require_server` applies that rule to a URL, and the ``unique_name``
fixture keeps tests that share one server out of each other's keys and queues.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

__all__ = ["in_ci", "server_missing", "require_server", "tcp_problem", "unique_name"]


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to a true value, as every CI service does)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def server_missing(name: str, reason: str) -> NoReturn:
    """Stop the current test because ``name`` cannot be reached: skip locally, fail in CI."""
    message = f"{name} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a test that needs a server may not skip)")
    pytest.skip(message)


def tcp_problem(url: str, *, default_port: int | None = None, timeout: float = 1.0) -> str | None:
    """Why no TCP connection opens to ``url``'s host and port, or ``None`` when one does."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or default_port
    if not host or port is None:
        raise ValueError(f"{url!r} names no host and port (give default_port for the scheme's)")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing accepts connections on {host}:{port} ({exc})"


def require_server(name: str, env: str, default: str, *, default_port: int | None = None) -> str:
    """The URL of ``name``'s server: ``$env``, else ``default``, once something listens there.

    When nothing does, the test stops through :func:`server_missing` (skip locally, fail in CI),
    with a message saying which variable points the tests at a server.
    """
    url = os.environ.get(env) or default
    problem = tcp_problem(url, default_port=default_port)
    if problem is not None:
        server_missing(name, f"{problem}; set {env} to a {name} URL")
    return url


@pytest.fixture
def unique_name() -> str:
    """A fresh name for this test's queues, keys or database (``taskq-test-<12 hex>``)."""
    return f"taskq-test-{uuid.uuid4().hex[:12]}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_server(name): needs a running server; fails instead of skipping in CI"
    )
