"""``tools/bench redis --quick`` runs taskq, Celery and Dramatiq on the shared Redis and prints a
number for each of them in every row of its table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from workspace import REPO_ROOT

# The benchmark flushes its database; on the shared server that is always database 15, whatever
# database $REDIS_URL names for the other tests.
NUMBER = r"\d[\d,]*(?:\.\d+)?"
ROWS = (
    "publish, 1,000 delay()",
    "publish, one group of 1,000",
    "consume+execute",
    "with worker start-up",
    "worker CPU per task",
    "local servers' CPU per task",
    "round trip p50",
    "round trip p99",
    "worker peak RSS",
    "worker start-up (s)",
)


@pytest.mark.slow
@pytest.mark.needs_server("Redis")
def test_the_quick_redis_benchmark_measures_all_three_systems(bench_redis_url: str) -> None:
    url = bench_redis_url
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "bench"), "redis", "--quick", "--url", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-6000:] + done.stderr[-3000:]
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "taskq", "Celery", "Dramatiq", "taskq/Celery",
                              "taskq/Dramatiq"]  # fmt: skip
    for label in ROWS:
        line = next((line for line in out.splitlines() if label in line), None)
        assert line is not None, f"no row {label!r} in:\n{out}"
        cells = re.split(r"\s{2,}", line.strip())[1:]
        assert len(cells) == 5, line
        for cell in cells[:3]:  # a figure for each system
            assert re.fullmatch(NUMBER, cell), line
        for cell in cells[3:]:  # and both ratios
            assert re.fullmatch(NUMBER + "x", cell), line
    assert f"broker {url}; results and the counter on Redis {url}" in out
    floor = next(line for line in out.splitlines() if line.startswith("the task alone"))
    assert re.search(rf"= {NUMBER} µs per task; on \d+ CPUs nothing consumes it faster than "
                     rf"{NUMBER}/s", floor), floor  # fmt: skip
    for budget in ("10x Celery's consume+execute is", "4x Dramatiq's is"):
        assert f"  {budget} " in out, out
    for system in ("taskq", "Celery", "Dramatiq"):
        assert re.search(rf"  {system} spent -?{NUMBER} µs per task besides the task", out), out
