"""``tools/bench canvas --quick`` runs a group and a chord on taskq and on Celery, on a private
redis-server, and prints a figure for each system and a ratio in every row of its table."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from taskq_testing.plugin import require_server
from taskq_testing.servers import ServerProcess, binary_or_none, free_port
from workspace import REPO_ROOT

# The benchmark flushes its database; on the shared server that is always database 15.
BENCH_DB = "/15"
NUMBER = r"\d[\d,]*(?:\.\d+)?"
ROWS = [
    f"{workload} of 500: {figure} (s)"
    for workload in ("group", "chord")
    for figure in ("applied", "done", "in hand")
]


def _ping(port: int) -> bool:
    import redis

    return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())


@pytest.fixture
def bench_redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server when the binary exists (the benchmark flushes its database, and
    another run may have left keys on the shared one); else database 15 of the shared server."""
    binary = binary_or_none("redis-server", "/usr/bin", "/usr/sbin", "/usr/local/bin")
    if binary is None:
        server = require_server(
            "Redis", "REDIS_URL", "redis://127.0.0.1:6379/15", default_port=6379
        )
        yield urlunsplit(urlsplit(server)._replace(path=BENCH_DB))
        return
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
            "no", "--dir", str(tmp_path)]  # fmt: skip
    with ServerProcess(argv, lambda: _ping(port), log_path=tmp_path / "redis.log"):
        yield f"redis://127.0.0.1:{port}{BENCH_DB}"


@pytest.mark.slow
@pytest.mark.needs_server("Redis")
def test_the_quick_canvas_benchmark_times_both_systems(bench_redis_url: str) -> None:
    url = bench_redis_url
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "bench"), "canvas", "--quick", "--url", url],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-6000:] + done.stderr[-3000:]
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "taskq", "Celery", "Celery/taskq"]
    for label in ROWS:
        line = next((line for line in out.splitlines() if line.startswith(label)), None)
        assert line is not None, f"no row {label!r} in:\n{out}"
        cells = re.split(r"\s{2,}", line.strip())[1:]
        assert len(cells) == 3, line
        for cell in cells[:2]:  # a figure for each system
            assert re.fullmatch(NUMBER, cell), line
        assert re.fullmatch(NUMBER + "x", cells[2]), line
    assert f"Redis {url}: this database is flushed" in out
    assert "FAILED" not in out
