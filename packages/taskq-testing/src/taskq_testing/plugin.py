"""The pytest plugin taskq's own suites and its users' suites load (entry point ``pytest11``).

It registers the ``needs_server`` marker and the rule that a test whose server is missing
*skips* on a developer's machine but *fails* in CI (``CI=true``), so a green CI run never means
"nothing ran".
"""

from __future__ import annotations

import os

import pytest

__all__ = ["in_ci", "server_missing"]


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to a true value, as every CI service does)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def server_missing(name: str, reason: str) -> None:
    """Stop the current test because ``name`` cannot be reached: skip locally, fail in CI."""
    message = f"{name} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a test that needs a server may not skip)")
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_server(name): needs a running server; fails instead of skipping in CI"
    )
