"""``@app.task`` keeps the function's signature for type checkers (ParamSpec),
``AsyncResult[R].get()`` is ``R``, and canvas workflows whose steps do not fit are errors:
pyright reports exactly the lines marked ``# error`` in each sample."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "typing_samples"


@pytest.mark.slow
@pytest.mark.parametrize("sample", ["task_calls.py", "canvas_types.py"])
def test_pyright_flags_bad_calls_and_only_those(sample: str) -> None:
    path = SAMPLES / sample
    pyright = shutil.which("pyright")
    if pyright is None:
        pytest.fail("pyright is not installed: run `uv sync`")
    done = subprocess.run(
        # The sample has its own config: the workspace's excludes it, on purpose.
        [pyright, "--outputjson", "--project", str(path.parent), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    flagged = {d["range"]["start"]["line"] + 1 for d in report["generalDiagnostics"]
               if d["severity"] == "error"}  # fmt: skip
    lines = path.read_text().splitlines()
    expected = {n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# error")}
    assert expected, "the sample marks no error lines"
    assert flagged == expected, report["generalDiagnostics"]
