"""tools/workspace.py: members, names and the first-party closure, read from the files."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_factory import edit, write_member

from workspace import WorkspaceError, import_name_for, load_workspace


@pytest.mark.parametrize(
    ("dist", "expected"),
    [
        ("taskq", None),
        ("taskq-core", "taskq"),
        ("taskq-redis", "taskq_redis"),
        ("taskq-a-b", "taskq_a_b"),
    ],
)
def test_import_name_for(dist: str, expected: str | None) -> None:
    assert import_name_for(dist) == expected


def test_members_and_their_facts(fake_workspace: Path) -> None:
    ws = load_workspace(fake_workspace)
    assert sorted(ws.members) == ["taskq", "taskq-protocol", "taskq-serializers"]
    serializers = ws.members["taskq-serializers"]
    assert serializers.version == "0.1.0"
    assert serializers.import_name == "taskq_serializers"
    assert [r.name for r in serializers.dependencies] == ["taskq-protocol"]
    assert sorted(serializers.extras) == ["auth", "yaml"]
    assert ws.dirs_without_pyproject == []


def test_closure_follows_base_dependencies_only(fake_workspace: Path) -> None:
    ws = load_workspace(fake_workspace)
    assert ws.first_party_closure("taskq-protocol") == ["taskq-protocol"]
    assert ws.first_party_closure("taskq-serializers") == ["taskq-serializers", "taskq-protocol"]
    assert ws.first_party_closure("taskq") == ["taskq", "taskq-protocol", "taskq-serializers"]


def test_closure_follows_a_requested_sibling_extra(fake_workspace: Path) -> None:
    write_member(fake_workspace, "taskq-yamlish", import_name="taskq_yamlish")
    edit(
        fake_workspace / "packages/taskq-serializers/pyproject.toml",
        'yaml = ["PyYAML>=6.0"]',
        'yaml = ["taskq-yamlish>=0.1,<1"]',
    )
    edit(
        fake_workspace / "packages/taskq/pyproject.toml",
        '"taskq-serializers>=0.1,<1",',
        '"taskq-serializers[yaml]>=0.1,<1",',
    )
    ws = load_workspace(fake_workspace)
    assert "taskq-yamlish" in ws.first_party_closure("taskq")
    assert "taskq-yamlish" not in ws.first_party_closure("taskq-serializers")


def test_excluded_and_incomplete_directories(fake_workspace: Path) -> None:
    (fake_workspace / "packages/empty").mkdir()
    edit(
        fake_workspace / "pyproject.toml",
        'members = ["packages/*"]',
        'members = ["packages/*"]\nexclude = ["packages/taskq"]',
    )
    ws = load_workspace(fake_workspace)
    assert "taskq" not in ws.members
    assert ws.dirs_without_pyproject == [fake_workspace / "packages/empty"]


def test_unparsable_requirement_is_a_workspace_error(fake_workspace: Path) -> None:
    edit(
        fake_workspace / "packages/taskq/pyproject.toml",
        '"taskq-protocol>=0.1,<1"',
        '"taskq-protocol>>1"',
    )
    with pytest.raises(WorkspaceError, match=r"taskq/pyproject\.toml"):
        load_workspace(fake_workspace)
