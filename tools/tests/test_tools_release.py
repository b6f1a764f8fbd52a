"""tools/release.py: version bump, changelog cut, lock refresh, real build and smoke, restore."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from workspace_factory import edit, snapshot

from commands import run, uv_executable
from release import ReleaseError, bump, cut_changelog, main

PROTO = Path("packages/taskq-protocol")
SER = Path("packages/taskq-serializers")
TODAY = date.today().isoformat()


@pytest.mark.parametrize(
    ("part", "expected"), [("patch", "0.1.3"), ("minor", "0.2.0"), ("major", "1.0.0")]
)
def test_bump(part: str, expected: str) -> None:
    assert bump("0.1.2", part) == expected


@pytest.mark.parametrize("version", ["0.1", "0.1.0rc1", "1.0.0.post1"])
def test_bump_refuses_non_final_versions(version: str) -> None:
    with pytest.raises(ReleaseError, match=r"is not X\.Y\.Z"):
        bump(version, "patch")


def test_cut_changelog_moves_entries_under_a_dated_heading() -> None:
    text = "# Changelog\n\n## Unreleased\n\n- New thing.\n- Fix.\n\n## 0.1.0 (2024-01-01)\n\n- First.\n"
    cut = cut_changelog(text, "0.2.0", date(2024, 5, 6))
    assert cut == (
        "# Changelog\n\n## Unreleased\n\n## 0.2.0 (2024-05-06)\n\n- New thing.\n- Fix.\n\n"
        "## 0.1.0 (2024-01-01)\n\n- First.\n"
    )


def test_cut_changelog_of_a_first_release() -> None:
    cut = cut_changelog("# Changelog\n\n## Unreleased\n\n- First.\n", "0.1.0", date(2024, 5, 6))
    assert cut == "# Changelog\n\n## Unreleased\n\n## 0.1.0 (2024-05-06)\n\n- First.\n"


@pytest.mark.parametrize(
    "text",
    ["# Changelog\n\n## Unreleased\n\n\n## 0.1.0\n\n- First.\n", "# Changelog\n\n## Unreleased\n"],
)
def test_cut_changelog_refuses_an_empty_unreleased_section(text: str) -> None:
    with pytest.raises(ReleaseError, match="Unreleased section is empty"):
        cut_changelog(text, "0.2.0", date(2024, 5, 6))


def test_cut_changelog_refuses_a_missing_unreleased_section() -> None:
    with pytest.raises(ReleaseError, match="no '## Unreleased' section"):
        cut_changelog("# Changelog\n\n## 0.1.0\n\n- First.\n", "0.2.0", date(2024, 5, 6))


def test_dry_run_changes_nothing(fake_workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(fake_workspace)
    assert (
        main(["taskq-protocol", "--bump", "minor", "--dry-run", "--root", str(fake_workspace)]) == 0
    )
    output = capsys.readouterr().out
    assert f"would release taskq-protocol 0.1.0 -> 0.2.0 ({TODAY})" in output
    assert "packages/taskq-protocol/src/taskq_protocol/__init__.py" in output
    assert "tag: taskq-protocol==0.2.0" in output
    assert snapshot(fake_workspace) == before


def test_empty_unreleased_is_refused_and_nothing_changes(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(fake_workspace / PROTO / "CHANGELOG.md", "- Something changed.\n", "")
    before = snapshot(fake_workspace)
    assert main(["taskq-protocol", "--root", str(fake_workspace)]) == 1
    assert "Unreleased section is empty" in capsys.readouterr().err
    assert snapshot(fake_workspace) == before


def test_unknown_package_exits_2(fake_workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["taskq-nope", "--root", str(fake_workspace)]) == 2
    assert "no member 'taskq-nope'" in capsys.readouterr().err


def lock(root: Path) -> None:
    run([uv_executable(), "lock"], root)


@pytest.mark.slow
def test_release_bumps_cuts_locks_builds_and_prints_the_tag(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock(fake_workspace)
    assert main(["taskq-protocol", "--root", str(fake_workspace)]) == 0
    output = capsys.readouterr().out
    assert "tag: taskq-protocol==0.1.1" in output
    assert "fresh venv held taskq-protocol==0.1.1" in output
    package = fake_workspace / PROTO
    assert 'version = "0.1.1"' in (package / "pyproject.toml").read_text()
    assert '__version__ = "0.1.1"' in (package / "src/taskq_protocol/__init__.py").read_text()
    changelog = (package / "CHANGELOG.md").read_text()
    assert f"## Unreleased\n\n## 0.1.1 ({TODAY})\n\n- Something changed.\n" in changelog
    lockfile = (fake_workspace / "uv.lock").read_text()
    assert 'name = "taskq-protocol"\nversion = "0.1.1"' in lockfile
    dist = fake_workspace / "dist" / "taskq-protocol"
    assert (dist / "taskq_protocol-0.1.1-py3-none-any.whl").is_file()
    assert (dist / "taskq_protocol-0.1.1.tar.gz").is_file()


@pytest.mark.slow
def test_a_bump_that_breaks_a_siblings_range_is_refused_and_restored(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock(fake_workspace)
    before = snapshot(fake_workspace)
    assert main(["taskq-protocol", "--bump", "major", "--root", str(fake_workspace)]) == 1
    error = capsys.readouterr().err
    assert "the bump breaks workspace rules" in error
    assert "excludes the workspace's taskq-protocol 1.0.0" in error
    assert snapshot(fake_workspace) == before


@pytest.mark.slow
def test_a_failed_smoke_check_restores_every_file(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The wheel is built but cannot be imported alone: an undeclared dependency.
    init = fake_workspace / SER / "src/taskq_serializers/__init__.py"
    edit(init, "import taskq_protocol", "import taskq_protocol\nimport yaml")
    lock(fake_workspace)
    before = snapshot(fake_workspace)
    assert main(["taskq-serializers", "--root", str(fake_workspace)]) == 1
    assert "No module named 'yaml'" in capsys.readouterr().err
    after = snapshot(fake_workspace)
    assert {k: v for k, v in after.items() if not k.startswith("dist/")} == before
