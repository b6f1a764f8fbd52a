"""The plugin's skip-or-fail rule, in a child pytest run so both outcomes can be observed."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

MISSING = """
from taskq_testing.plugin import server_missing

def test_needs_redis():
    server_missing("Redis", "nothing listens on 127.0.0.1:1")
"""


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "failed")])
def test_missing_server_skips_locally_and_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(MISSING)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*CI=true: a test that needs a server may not skip*"])
