"""tools/requirement.py: the small PEP 508 subset the workspace writes."""

from __future__ import annotations

import pytest

from requirement import Clause, RequirementError, normalize, parse_requirement, release_tuple


def test_parses_name_extras_specifier_and_marker() -> None:
    req = parse_requirement("Taskq_Serializers[Auth, yaml] >=0.1, <1 ; python_version >= '3.10'")
    assert req.name == "taskq-serializers"
    assert req.extras == ("auth", "yaml")
    assert req.clauses == (Clause(">=", "0.1"), Clause("<", "1"))


def test_bare_name() -> None:
    req = parse_requirement("taskq")
    assert (req.name, req.extras, req.clauses) == ("taskq", (), ())


@pytest.mark.parametrize("text", ["", "taskq @ file:///x", "taskq >>1", "taskq[yaml"])
def test_unreadable_requirements_raise(text: str) -> None:
    with pytest.raises(RequirementError):
        parse_requirement(text)


def test_normalize() -> None:
    assert normalize("Taskq.Redis__X") == "taskq-redis-x"


@pytest.mark.parametrize(
    ("version", "expected"), [("1", (1, 0, 0)), ("0.1", (0, 1, 0)), ("1.2.3rc1", (1, 2, 3))]
)
def test_release_tuple(version: str, expected: tuple[int, ...]) -> None:
    assert release_tuple(version) == expected


def test_release_tuple_refuses_non_versions() -> None:
    with pytest.raises(RequirementError):
        release_tuple("latest")
