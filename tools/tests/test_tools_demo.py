"""The README's main job: the demo runs a worker on SQLite and prints every example's result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workspace import REPO_ROOT


@pytest.mark.slow
def test_the_quick_start_demo_prints_every_result(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "demo")],
        env={**os.environ, "TASKQ_DEMO_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "add(i, i) for i in 0..9   -> [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]" in out
    assert "total of those            -> 90" in out
    assert "chain (2+3)*10+7          -> 57" in out
    assert "flaky(2), auto-retried    -> succeeded after 2 retries" in out
    assert "roll_dice, 1 s countdown  -> " in out
    assert (tmp_path / "taskq.sqlite3").exists()  # the embedded default, in the working directory
    assert "embedded SQLite file taskq.sqlite3" in out  # the worker says so at start
