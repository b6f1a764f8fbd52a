"""``@app.task`` keeps the function's signature for type checkers (ParamSpec), and
``AsyncResult[R].get()`` is ``R``: pyright reports exactly the lines marked ``# error``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SAMPLE = Path(__file__).parent / "typing_samples" / "task_calls.py"


@pytest.mark.slow
def test_pyright_flags_bad_calls_and_only_those() -> None:
    pyright = shutil.which("pyright")
    if pyright is None:
        pytest.fail("pyright is not installed: run `uv sync`")
    done = subprocess.run(
        # The sample has its own config: the workspace's excludes it, on purpose.
        [pyright, "--outputjson", "--project", str(SAMPLE.parent), str(SAMPLE)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    flagged = {d["range"]["start"]["line"] + 1 for d in report["generalDiagnostics"]
               if d["severity"] == "error"}  # fmt: skip
    lines = SAMPLE.read_text().splitlines()
    expected = {n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# error")}
    assert expected, "the sample marks no error lines"
    assert flagged == expected, report["generalDiagnostics"]
