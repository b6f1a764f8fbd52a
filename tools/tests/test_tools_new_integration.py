"""tools/new_integration.py: the new package passes the workspace rules from its first commit."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import tomllib
from workspace_factory import edit, snapshot

from check_workspace import check
from check_workspace import main as check_main
from commands import run, uv_executable
from new_integration import main
from wheel_smoke import build_alone, smoke_check
from workspace import REPO_ROOT, load_workspace


def new(root: Path, *args: str) -> int:
    return main([*args, "--root", str(root)])


def test_new_integration_passes_the_workspace_check(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new(fake_workspace, "redis") == 0
    assert "Created packages/taskq-redis" in capsys.readouterr().out
    package = fake_workspace / "packages/taskq-redis"
    assert sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()) == [
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "src/taskq_redis/__init__.py",
        "src/taskq_redis/py.typed",
        "tests/test_redis_package.py",
    ]
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == ["taskq-protocol>=0.1,<1"]
    assert set(project["project"]["entry-points"]) == {"taskq.transports", "taskq.backends"}
    root = tomllib.loads((fake_workspace / "pyproject.toml").read_text())
    assert "taskq-redis" in root["project"]["dependencies"]
    assert root["tool"]["uv"]["sources"]["taskq-redis"] == {"workspace": True}
    assert "taskq_redis" in root["tool"]["importlinter"]["root_packages"]
    assert "taskq_redis" in root["tool"]["ruff"]["lint"]["isort"]["known-first-party"]
    meta = tomllib.loads((fake_workspace / "packages/taskq/pyproject.toml").read_text())
    assert meta["project"]["optional-dependencies"]["redis"] == ["taskq-redis>=0.1,<1"]
    assert check_main(["--root", str(fake_workspace)]) == 0, capsys.readouterr().out


def test_several_extras_and_the_core_dependency(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Once taskq-core exists, integrations build on it instead of on the protocol.
    core = fake_workspace / "packages/taskq-core"
    shutil.copytree(fake_workspace / "packages/taskq-protocol", core)
    edit(core / "pyproject.toml", 'name = "taskq-protocol"', 'name = "taskq-core"')
    edit(core / "pyproject.toml", 'version = "0.1.0"', 'version = "2.3.0"')
    assert new(fake_workspace, "aws", "--extra", "s3", "--extra", "sqs", "--extra", "s3") == 0
    project = tomllib.loads((fake_workspace / "packages/taskq-aws/pyproject.toml").read_text())
    assert project["project"]["dependencies"] == ["taskq-core>=2.3,<3"]
    meta = tomllib.loads((fake_workspace / "packages/taskq/pyproject.toml").read_text())
    extras = meta["project"]["optional-dependencies"]
    assert extras["s3"] == extras["sqs"] == ["taskq-aws>=0.1,<1"]


def test_a_technology_that_is_not_a_bundle_gets_no_extra(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert new(fake_workspace, "nats") == 0
    assert "no meta-package extra was added" in capsys.readouterr().out
    meta = tomllib.loads((fake_workspace / "packages/taskq/pyproject.toml").read_text())
    assert set(meta["project"]["optional-dependencies"]) == {"yaml", "auth"}
    assert check_main(["--root", str(fake_workspace)]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Redis!"], "is not a technology name"),
        (["redis", "--extra", "fast"], "--extra 'fast' is not a Celery bundle name"),
        (["serialize", "--extra", "yaml"], "extra 'yaml' already installs taskq-serializers"),
        (["protocol"], "packages/taskq-protocol already exists"),
    ],
    ids=["bad-name", "not-a-bundle", "extra-taken", "exists"],
)
def test_refusals_write_nothing(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = snapshot(fake_workspace)
    assert new(fake_workspace, *args) == 1
    assert message in capsys.readouterr().err
    assert snapshot(fake_workspace) == before


def test_an_edit_it_cannot_make_writes_nothing(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        fake_workspace / "pyproject.toml",
        'root_packages = ["taskq_protocol", "taskq_serializers"]\n',
        "",
    )
    before = snapshot(fake_workspace)
    assert new(fake_workspace, "redis") == 1
    assert "[tool.importlinter] has no array `root_packages" in capsys.readouterr().err
    assert snapshot(fake_workspace) == before


def copy_of_real_workspace(target: Path) -> Path:
    target.mkdir()
    shutil.copy2(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(
        REPO_ROOT / "packages",
        target / "packages",
        ignore=shutil.ignore_patterns(
            "__pycache__", ".pytest_cache", "dist", "build", "*.egg-info"
        ),
    )
    return target


@pytest.mark.slow
def test_on_a_copy_of_the_real_workspace(tmp_path: Path) -> None:
    """No new problem, a clean lint, a wheel that installs alone, and template tests that pass."""
    root = copy_of_real_workspace(tmp_path / "copy")
    problems_before = check(load_workspace(root))
    # A technology no member serves yet (redis, amqp, sqs and the other brokers have theirs), so the copy gains a new one.
    assert new(root, "memcache") == 0
    ws = load_workspace(root)
    assert check(ws) == problems_before
    package = root / "packages/taskq-memcache"
    ruff = [sys.executable, "-m", "ruff"]
    run([*ruff, "check", str(package)], root)
    run([*ruff, "format", "--check", str(package)], root)
    smoke_check(ws, "taskq-memcache")
    # Run the generated tests against the installed wheel, in a venv of their own.
    wheels = [
        build_alone(ws, name, tmp_path / "wheels")[0]
        for name in ws.first_party_closure("taskq-memcache")
    ]
    uv = uv_executable()
    run([uv, "venv", "--python", sys.executable, str(tmp_path / "venv")], tmp_path)
    python = str(tmp_path / "venv/bin/python")
    run([uv, "pip", "install", "--python", python, "pytest", *map(str, wheels)], tmp_path)
    output = run([python, "-m", "pytest", "-p", "no:cacheprovider", str(package / "tests")], root)
    assert "2 passed" in output
