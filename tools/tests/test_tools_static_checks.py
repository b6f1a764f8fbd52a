"""Lint, format, types and import layers, run by the one test command (README.md).

Each check is the same command CI's checks job runs, so a change that breaks one fails the
test suite on a developer's machine too, not only in CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from workspace import REPO_ROOT

CHECKS = {
    "ruff check": ["ruff", "check", "."],
    "ruff format": ["ruff", "format", "--check", "."],
    "pyright": ["pyright"],
    "import layers": ["lint-imports"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CHECKS))
def test_static_check_passes(name: str) -> None:
    command = CHECKS[name]
    executable = shutil.which(command[0], path=str(REPO_ROOT / ".venv" / "bin")) or shutil.which(
        command[0]
    )
    assert executable, f"{command[0]} is not installed: run `uv sync`"
    done = subprocess.run(
        [executable, *command[1:]], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"


def test_codec_benchmark_runs_and_compares_both_sides() -> None:
    sys.path.insert(0, str(REPO_ROOT / "tools" / "bench"))
    try:
        import codec
    finally:
        sys.path.remove(str(REPO_ROOT / "tools" / "bench"))
    rows = codec.run(seconds=0.05)
    assert {(r["serializer"], r["stage"]) for r in rows} == {
        (s, stage) for s in ("json", "msgpack") for stage in ("encode", "decode", "encode+decode")
    }
    assert all(r["taskq"] > 0 and r["kombu"] > 0 for r in rows)
    assert "taskq/kombu" in codec.report(rows)


@pytest.mark.slow
def test_sqlite_benchmark_runs_a_real_worker() -> None:
    sys.path.insert(0, str(REPO_ROOT / "tools" / "bench"))
    try:
        import sqlite
    finally:
        sys.path.remove(str(REPO_ROOT / "tools" / "bench"))
    result = sqlite.run(tasks=200, latency_calls=20, pool="solo")
    assert result["consume_per_s"] > 0
    assert result["late_results_after_drain"] >= 0
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"]
    assert "round trip" in sqlite.report(result)
