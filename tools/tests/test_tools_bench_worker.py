"""``tools/bench worker`` measures every pool, with and without results, on the memory broker."""

from __future__ import annotations

import sys

from workspace import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tools" / "bench"))

import worker_overhead  # a script directory, put on the path above


def test_a_small_run_gives_a_rate_and_a_cpu_cost_per_pool() -> None:
    result = worker_overhead.run(300, pools=("solo", "prefork"), rounds=1)
    rates = result["rates"]
    assert set(rates) == {(p, stored) for p in ("solo", "prefork") for stored in (True, False)}
    for per_second, cpu_per_task, parent_per_task in rates.values():
        assert per_second > 0
        assert 0 < cpu_per_task < 0.1
        assert 0 <= parent_per_task <= cpu_per_task
    table = worker_overhead.report(result)
    assert "solo" in table
    assert "prefork" in table
    assert "us/task" in table
