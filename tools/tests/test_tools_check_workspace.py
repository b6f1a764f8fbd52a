"""tools/check_workspace.py: a valid workspace passes, and each broken rule is reported with its fix."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from workspace_factory import edit, write_member

from check_workspace import main

SER = Path("packages/taskq-serializers")
PROTO = Path("packages/taskq-protocol")
META = Path("packages/taskq")


def run_check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--root", str(root)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_valid_workspace_passes_and_lists_unserved_bundles(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_check(fake_workspace, capsys)
    assert code == 0, output
    assert "3 members, all rules hold" in output
    info = next(line for line in output.splitlines() if line.startswith("info: bundles"))
    assert "redis" in info
    assert "yaml" not in info  # served by the fake meta-package's extra


def add_core(root: Path, import_name: str) -> None:
    """Add a taskq-core member and register it everywhere the rules ask."""
    write_member(
        root,
        "taskq-core",
        import_name=import_name,
        dependencies=("taskq-serializers>=0.1,<1",),
    )
    pyproject = root / "pyproject.toml"
    edit(pyproject, '    "taskq-serializers",\n]', '    "taskq-serializers",\n    "taskq-core",\n]')
    edit(pyproject, "[tool.ruff", "taskq-core = { workspace = true }\n\n[tool.ruff")
    edit(
        pyproject, 'root_packages = ["taskq_protocol"', 'root_packages = ["taskq", "taskq_protocol"'
    )
    edit(
        pyproject,
        'layers = [\n    "taskq_serializers"',
        'layers = [\n    "taskq",\n    "taskq_serializers"',
    )


def test_taskq_core_owns_import_taskq(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_core(fake_workspace, "taskq")
    code, output = run_check(fake_workspace, capsys)
    assert code == 0, output


def test_taskq_core_with_its_own_import_name_is_refused(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_core(fake_workspace, "taskq_core")
    code, output = run_check(fake_workspace, capsys)
    assert code == 1
    assert "'taskq-core' must own `import taskq`; create src/taskq/__init__.py" in output


def rename_dir(root: Path) -> None:
    (root / SER).rename(root / "packages/taskq-serializer")


def rename_import(root: Path) -> None:
    (root / SER / "src/taskq_serializers").rename(root / SER / "src/taskq_serial")


def meta_with_code(root: Path) -> None:
    (root / META / "src/taskq").mkdir(parents=True)
    (root / META / "src/taskq/__init__.py").write_text("", encoding="utf-8")


def only_conftest(root: Path) -> None:
    shutil.rmtree(root / SER / "tests")
    (root / SER / "tests").mkdir()
    (root / SER / "tests/conftest.py").write_text("", encoding="utf-8")


def stray_directory(root: Path) -> None:
    (root / "packages/leftover").mkdir()


CASES: list[tuple[str, Callable[[Path], object], str]] = [
    ("dir-vs-dist", rename_dir, "directory and distribution name 'taskq-serializers' disagree"),
    ("import-name", rename_import, "must own `import taskq_serializers`"),
    ("stray-import", rename_import, "src/taskq_serial is not the import name 'taskq_serializers'"),
    (
        "hatch-packages",
        lambda r: edit(r / SER / "pyproject.toml", '["src/taskq_serializers"]', '["src"]'),
        'packages = ["src/taskq_serializers"]',
    ),
    ("meta-has-code", meta_with_code, "the meta-package holds code (src/taskq)"),
    (
        "py-typed",
        lambda r: (r / SER / "src/taskq_serializers/py.typed").unlink(),
        "src/taskq_serializers/py.typed is missing",
    ),
    (
        "no-tests",
        lambda r: shutil.rmtree(r / SER / "tests"),
        "packages/taskq-serializers: no tests/test_*.py",
    ),
    ("tests-without-test-file", only_conftest, "packages/taskq-serializers: no tests/test_*.py"),
    (
        "no-readme",
        lambda r: (r / META / "README.md").unlink(),
        "packages/taskq: README.md is missing or empty",
    ),
    (
        "empty-readme",
        lambda r: (r / META / "README.md").write_text("\n", encoding="utf-8"),
        "packages/taskq: README.md is missing or empty",
    ),
    (
        "no-changelog",
        lambda r: (r / PROTO / "CHANGELOG.md").unlink(),
        "packages/taskq-protocol: CHANGELOG.md is missing",
    ),
    (
        "changelog-without-unreleased",
        lambda r: edit(r / PROTO / "CHANGELOG.md", "## Unreleased", "## 0.1.0 (2024-01-01)"),
        "CHANGELOG.md must start its sections with '## Unreleased'",
    ),
    (
        "unreleased-not-on-top",
        lambda r: edit(r / PROTO / "CHANGELOG.md", "## Unreleased", "## 0.1.0\n\n## Unreleased"),
        "CHANGELOG.md must start its sections with '## Unreleased'",
    ),
    (
        "dynamic-version",
        lambda r: edit(r / SER / "pyproject.toml", 'version = "0.1.0"', 'dynamic = ["version"]'),
        "packages/taskq-serializers: no static version",
    ),
    (
        "version-not-release",
        lambda r: edit(r / SER / "pyproject.toml", 'version = "0.1.0"', 'version = "0.1"'),
        "version '0.1' is not X.Y.Z",
    ),
    (
        "version-literal-disagrees",
        lambda r: edit(r / PROTO / "src/taskq_protocol/__init__.py", '"0.1.0"', '"0.0.9"'),
        "__version__ = '0.0.9' but pyproject.toml says '0.1.0'",
    ),
    (
        "protocol-dependency",
        lambda r: edit(
            r / PROTO / "pyproject.toml", "dependencies = [\n", 'dependencies = [\n"six",\n'
        ),
        "taskq-protocol must have no dependencies but its dependencies lists 'six'",
    ),
    (
        "protocol-optional-dependency",
        lambda r: edit(
            r / PROTO / "pyproject.toml",
            "[project.optional-dependencies]\n",
            '[project.optional-dependencies]\nfast = ["orjson"]\n',
        ),
        "taskq-protocol must have no dependencies but its extra 'fast' lists 'orjson'",
    ),
    (
        "pinned",
        lambda r: edit(
            r / SER / "pyproject.toml", '"taskq-protocol>=0.1,<1"', '"taskq-protocol==0.1.0"'
        ),
        "'taskq-protocol==0.1.0': first-party dependencies are never pinned",
    ),
    (
        "no-cap",
        lambda r: edit(
            r / SER / "pyproject.toml", '"taskq-protocol>=0.1,<1"', '"taskq-protocol>=0.1"'
        ),
        "'taskq-protocol>=0.1': first-party ranges need a floor and a major cap",
    ),
    (
        "bare",
        lambda r: edit(r / META / "pyproject.toml", '"taskq-protocol>=0.1,<1"', '"taskq-protocol"'),
        "'taskq-protocol': first-party ranges need a floor and a major cap",
    ),
    (
        "minor-cap",
        lambda r: edit(r / SER / "pyproject.toml", ">=0.1,<1", ">=0.1,<0.2"),
        "the cap '0.2' is not a bare major number",
    ),
    (
        "far-cap",
        lambda r: edit(r / SER / "pyproject.toml", ">=0.1,<1", ">=0.1,<3"),
        "the cap must be the major after the floor; write '>=0.1,<1'",
    ),
    (
        "extra-range",
        lambda r: edit(r / META / "pyproject.toml", "[yaml]>=0.1,<1", "[yaml]==0.1.0"),
        "(extra 'yaml'): first-party dependencies are never pinned",
    ),
    (
        "range-excludes-current",
        lambda r: edit(r / SER / "pyproject.toml", ">=0.1,<1", ">=0.2,<1"),
        "excludes the workspace's taskq-protocol 0.1.0",
    ),
    (
        "extra-to-missing-member",
        lambda r: edit(
            r / META / "pyproject.toml", "auth =", 'redis = ["taskq-redis>=0.1,<1"]\nauth ='
        ),
        "extra 'redis' points at 'taskq-redis', which is not a workspace member",
    ),
    (
        "extra-to-missing-member-extra",
        lambda r: edit(
            r / META / "pyproject.toml", "taskq-serializers[auth]", "taskq-serializers[sign]"
        ),
        "extra 'auth' asks for taskq-serializers[sign], but taskq-serializers has no extra 'sign'",
    ),
    (
        "extra-not-a-bundle",
        lambda r: edit(r / META / "pyproject.toml", "auth =", "signing ="),
        "extra 'signing' is neither a Celery bundle nor a known taskq addition",
    ),
    (
        "meta-dependency-not-member",
        lambda r: edit(
            r / META / "pyproject.toml", '"taskq-protocol>=0.1,<1",', '"taskq-core>=0.1,<1",'
        ),
        "dependencies points at 'taskq-core', which is not a workspace member",
    ),
    (
        "hint-missing-extra",
        lambda r: edit(
            r / SER / "src/taskq_serializers/__init__.py",
            "import taskq_protocol",
            "import taskq_protocol\n\nHINT = \"pip install 'taskq[msgpack]'\"",
        ),
        "__init__.py:5: \"pip install 'taskq[msgpack]\": taskq has no extra 'msgpack' (it has: auth, yaml)",
    ),
    (
        "hint-one-of-several",
        lambda r: edit(
            r / SER / "src/taskq_serializers/__init__.py",
            "import taskq_protocol",
            "import taskq_protocol\n\n# pip install 'taskq[yaml, msgpack]'",
        ),
        "taskq has no extra 'msgpack'",
    ),
    (
        "hint-placeholder",
        lambda r: edit(
            r / SER / "src/taskq_serializers/__init__.py",
            "import taskq_protocol",
            "import taskq_protocol\n\nX = 'yaml'\nHINT = f\"pip install 'taskq[{X}]'\"",
        ),
        "the extra is filled in from a placeholder, so it cannot be checked",
    ),
    (
        "hint-member-missing",
        lambda r: edit(
            r / SER / "src/taskq_serializers/__init__.py",
            "import taskq_protocol",
            "import taskq_protocol\n\nHINT = 'pip install taskq-redis'",
        ),
        "'taskq-redis' is not a workspace member; hint at an existing package",
    ),
    (
        "hint-member-extra",
        lambda r: edit(
            r / PROTO / "src/taskq_protocol/__init__.py",
            '"""Fake protocol."""',
            '"""Fake protocol: pip install \'taskq-serializers[toml]\'."""',
        ),
        "taskq-serializers has no extra 'toml' (it has: auth, yaml)",
    ),
    (
        "root-packages",
        lambda r: edit(
            r / "pyproject.toml", 'root_packages = ["taskq_protocol", ', "root_packages = ["
        ),
        "root_packages lacks 'taskq_protocol' (taskq-protocol)",
    ),
    (
        "layers-missing",
        lambda r: edit(r / "pyproject.toml", '    "taskq_protocol",\n]', "]"),
        "lists layers ['taskq_serializers'], but the layered members present are "
        "['taskq_serializers', 'taskq_protocol']",
    ),
    (
        "layers-order",
        lambda r: edit(
            r / "pyproject.toml",
            '    "taskq_serializers",\n    "taskq_protocol",',
            '    "taskq_protocol",\n    "taskq_serializers",',
        ),
        "lists layers ['taskq_protocol', 'taskq_serializers']",
    ),
    (
        "no-layers-contract",
        lambda r: edit(r / "pyproject.toml", 'type = "layers"', 'type = "independence"'),
        "no import-linter layers contract",
    ),
    (
        "root-dependency",
        lambda r: edit(r / "pyproject.toml", '    "taskq-serializers",\n', ""),
        'pyproject.toml: [project] dependencies lacks "taskq-serializers"',
    ),
    (
        "root-source",
        lambda r: edit(r / "pyproject.toml", "taskq-protocol = { workspace = true }\n", ""),
        "[tool.uv.sources] needs taskq-protocol = { workspace = true }",
    ),
    ("dir-without-pyproject", stray_directory, "packages/leftover: matched by [tool.uv.workspace]"),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_broken_rule_is_reported(
    fake_workspace: Path,
    capsys: pytest.CaptureFixture[str],
    mutate: Callable[[Path], object],
    expected: str,
) -> None:
    mutate(fake_workspace)
    code, output = run_check(fake_workspace, capsys)
    assert code == 1
    assert expected in output


def test_meta_package_missing_is_reported(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(fake_workspace / META)
    edit(fake_workspace / "pyproject.toml", '    "taskq",\n', "")
    edit(fake_workspace / "pyproject.toml", "taskq = { workspace = true }\n", "")
    code, output = run_check(fake_workspace, capsys)
    assert code == 1
    assert "packages/taskq: the meta-package is missing" in output


def test_every_problem_is_one_line(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_workspace / SER / "README.md").unlink()
    (fake_workspace / PROTO / "src/taskq_protocol/py.typed").unlink()
    code, output = run_check(fake_workspace, capsys)
    assert code == 1
    problems = [line for line in output.splitlines() if line.startswith("packages/")]
    assert len(problems) == 2
    assert "check_workspace: 2 problem(s)" in output


@pytest.mark.parametrize(
    "breakage",
    [
        lambda r: (r / "pyproject.toml").unlink(),
        lambda r: edit(r / SER / "pyproject.toml", "[project]", "[project"),
        lambda r: edit(
            r / SER / "pyproject.toml", '"taskq-protocol>=0.1,<1"', '"taskq-protocol @ ./x"'
        ),
    ],
    ids=["no-root", "bad-toml", "unreadable-requirement"],
)
def test_unreadable_workspace_exits_2(
    fake_workspace: Path, capsys: pytest.CaptureFixture[str], breakage: Callable[[Path], object]
) -> None:
    breakage(fake_workspace)
    code, output = run_check(fake_workspace, capsys)
    assert code == 2
    assert "cannot read the workspace" in output
