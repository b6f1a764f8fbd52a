"""The real workspace keeps its own rules: the check CI runs, inside the test suite too."""

from __future__ import annotations

from check_workspace import check
from workspace import REPO_ROOT, load_workspace


def test_the_repository_passes_check_workspace() -> None:
    problems = check(load_workspace(REPO_ROOT))
    assert not problems, "\n".join(problems)
