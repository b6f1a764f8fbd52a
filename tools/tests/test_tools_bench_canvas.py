"""``tools/bench canvas --quick`` runs a group and a chord on taskq and on Celery, on a private
redis-server, and prints a figure for each system and a ratio in every row of its table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from workspace import REPO_ROOT

# The benchmark flushes its database; on the shared server that is always database 15.
NUMBER = r"\d[\d,]*(?:\.\d+)?"
ROWS = [
    f"{workload} of 500: {figure} (s)"
    for workload in ("group", "chord")
    for figure in ("applied", "done", "in hand")
]


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
