"""tools/wheel_smoke.py, for real: wheels are built with uv and installed into fresh venvs."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_factory import edit

from wheel_smoke import SmokeError, main, smoke_check
from workspace import load_workspace

pytestmark = pytest.mark.slow

PROTO = Path("packages/taskq-protocol")
SER = Path("packages/taskq-serializers")


def test_protocol_installs_alone(fake_workspace: Path, tmp_path: Path) -> None:
    result = smoke_check(load_workspace(fake_workspace), "taskq-protocol", tmp_path / "out")
    assert result.installed == {"taskq-protocol": "0.1.0"}
    assert result.imported == ("taskq_protocol",)
    assert result.wheel == tmp_path / "out" / "taskq_protocol-0.1.0-py3-none-any.whl"
    assert result.sdist == tmp_path / "out" / "taskq_protocol-0.1.0.tar.gz"
    assert result.wheel.is_file()
    assert result.sdist.is_file()


def test_first_party_dependencies_come_from_fresh_workspace_wheels(fake_workspace: Path) -> None:
    result = smoke_check(load_workspace(fake_workspace), "taskq-serializers")
    assert result.installed == {"taskq-protocol": "0.1.0", "taskq-serializers": "0.1.0"}
    assert result.wheel.parent == fake_workspace / "dist" / "taskq-serializers"
    # Only the package under test lands in dist/NAME; its dependencies were built elsewhere.
    assert sorted(p.name for p in result.wheel.parent.glob("taskq*")) == [
        "taskq_serializers-0.1.0-py3-none-any.whl",
        "taskq_serializers-0.1.0.tar.gz",
    ]


def test_meta_package_imports_its_dependencies(fake_workspace: Path) -> None:
    result = smoke_check(load_workspace(fake_workspace), "taskq")
    assert set(result.installed) == {"taskq", "taskq-protocol", "taskq-serializers"}
    assert result.imported == ("taskq_protocol", "taskq_serializers")


def test_protocol_with_a_dependency_is_refused(fake_workspace: Path) -> None:
    edit(
        fake_workspace / PROTO / "pyproject.toml",
        "dependencies = [\n",
        'dependencies = [\n"taskq-serializers>=0.1,<1",\n',
    )
    with pytest.raises(
        SmokeError,
        match="taskq-protocol must install alone, but the fresh venv also holds taskq-serializers",
    ):
        smoke_check(load_workspace(fake_workspace), "taskq-protocol")


def test_undeclared_sibling_import_fails(fake_workspace: Path) -> None:
    # Inside the workspace this import works; from the wheel alone it must not.
    edit(
        fake_workspace / PROTO / "src/taskq_protocol/__init__.py",
        '"""Fake protocol."""',
        '"""Fake protocol."""\nimport taskq_serializers',
    )
    with pytest.raises(SmokeError, match="No module named 'taskq_serializers'"):
        smoke_check(load_workspace(fake_workspace), "taskq-protocol")


def test_wheel_without_py_typed_fails(fake_workspace: Path) -> None:
    (fake_workspace / PROTO / "src/taskq_protocol/py.typed").unlink()
    with pytest.raises(SmokeError, match=r"the installed taskq_protocol has no py\.typed"):
        smoke_check(load_workspace(fake_workspace), "taskq-protocol")


def test_wheel_missing_its_module_fails(fake_workspace: Path) -> None:
    edit(
        fake_workspace / SER / "pyproject.toml",
        'packages = ["src/taskq_serializers"]',
        'only-include = ["README.md"]',
    )
    with pytest.raises(SmokeError, match="No module named 'taskq_serializers'"):
        smoke_check(load_workspace(fake_workspace), "taskq-serializers")


def test_main_reports_success_and_failure(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["taskq-protocol", "--root", str(fake_workspace)]) == 0
    assert "taskq-protocol OK" in capsys.readouterr().out
    assert main(["taskq-nope", "--root", str(fake_workspace)]) == 2
    assert "no member 'taskq-nope'" in capsys.readouterr().err
    (fake_workspace / PROTO / "src/taskq_protocol/py.typed").unlink()
    assert main(["taskq-protocol", "--root", str(fake_workspace)]) == 1
    assert "has no py.typed" in capsys.readouterr().err
