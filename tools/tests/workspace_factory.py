"""Builds small, valid fake workspaces for the tools' tests, and edits them one rule at a time.

The fake is a real uv workspace (uv can build its members), shaped like the real one: the
protocol package, the serializers on top of it, and the meta-package whose extras point at the
serializers' extras. Each test breaks one thing and expects the one matching complaint.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

ROOT_PYPROJECT = """\
# The fake root: pulls every member in.
[project]
name = "fake-workspace"
version = "0"
requires-python = ">=3.10"
dependencies = [
    "taskq",
    "taskq-protocol",
    "taskq-serializers",
]

[tool.uv]
package = false

[tool.uv.workspace]
members = ["packages/*"]

[tool.uv.sources]
taskq = { workspace = true }
taskq-protocol = { workspace = true }
taskq-serializers = { workspace = true }

[tool.ruff.lint.isort]
known-first-party = ["taskq", "taskq_protocol", "taskq_serializers"]

[tool.importlinter]
root_packages = ["taskq_protocol", "taskq_serializers"]

[[tool.importlinter.contracts]]
name = "Layers"
type = "layers"
layers = [
    "taskq_serializers",
    "taskq_protocol",
]
"""


def write_member(
    root: Path,
    dist: str,
    *,
    import_name: str | None,
    dependencies: tuple[str, ...] = (),
    extras: dict[str, list[str]] | None = None,
    init: str = "",
) -> Path:
    """Write one member with every file the rules ask for; return its directory."""
    path = root / "packages" / dist
    deps = "".join(f'    "{d}",\n' for d in dependencies)
    optional = "".join(f"{name} = {json.dumps(reqs)}\n" for name, reqs in (extras or {}).items())
    wheel = (
        f'packages = ["src/{import_name}"]'
        if import_name is not None
        else "bypass-selection = true"
    )
    pyproject = (
        f'[project]\nname = "{dist}"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n'
        f"dependencies = [\n{deps}]\n\n[project.optional-dependencies]\n{optional}\n"
        '[build-system]\nrequires = ["hatchling>=1.25"]\nbuild-backend = "hatchling.build"\n\n'
        f"[tool.hatch.build.targets.wheel]\n{wheel}\n"
    )
    (path / "tests").mkdir(parents=True)
    (path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    (path / "README.md").write_text(f"# {dist}\n\nA fake member.\n", encoding="utf-8")
    (path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## Unreleased\n\n- Something changed.\n", encoding="utf-8"
    )
    short = dist.removeprefix("taskq-").replace("-", "_") if dist != "taskq" else "meta"
    (path / "tests" / f"test_{short}_fake.py").write_text(
        "def test_fake() -> None:\n    assert True\n", encoding="utf-8"
    )
    if import_name is not None:
        package = path / "src" / import_name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(textwrap.dedent(init), encoding="utf-8")
        (package / "py.typed").write_text("", encoding="utf-8")
    return path


def build_workspace(root: Path) -> Path:
    """A valid three-member workspace at `root`."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(ROOT_PYPROJECT, encoding="utf-8")
    write_member(
        root,
        "taskq-protocol",
        import_name="taskq_protocol",
        init='"""Fake protocol."""\n\n__version__ = "0.1.0"\n',
    )
    write_member(
        root,
        "taskq-serializers",
        import_name="taskq_serializers",
        dependencies=("taskq-protocol>=0.1,<1",),
        extras={"yaml": ["PyYAML>=6.0"], "auth": ["cryptography>=42"]},
        init='"""Fake serializers."""\n\nimport taskq_protocol\n',
    )
    write_member(
        root,
        "taskq",
        import_name=None,
        dependencies=("taskq-protocol>=0.1,<1", "taskq-serializers>=0.1,<1"),
        extras={
            "yaml": ["taskq-serializers[yaml]>=0.1,<1"],
            "auth": ["taskq-serializers[auth]>=0.1,<1"],
        },
    )
    return root


def edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there) by `new` in a file."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path: to prove a refused command wrote nothing."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
