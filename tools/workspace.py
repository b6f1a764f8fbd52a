"""A read-only model of the uv workspace: the root pyproject and its member packages.

Every tool in this directory needs the same facts (which members exist, what they are called,
what they import as, what they depend on), so they are read in one place, from the files, with
no third-party library: the tools must run before anything else is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from requirement import Requirement, RequirementError, normalize, parse_requirement

REPO_ROOT = Path(__file__).resolve().parent.parent

META_PACKAGE = "taskq"
"""The meta-package: no code, only dependencies and extras named like Celery's bundles."""

CORE_PACKAGE = "taskq-core"
"""The one naming exception: `taskq-core` owns `import taskq`."""

PROTOCOL_PACKAGE = "taskq-protocol"
"""The package that must install alone: no dependencies at all."""

LAYERS = ("taskq-protocol", "taskq-serializers", "taskq-core", "taskq-worker", "taskq-cli")
"""The core stack, lowest first: each imports only the ones before it."""


class WorkspaceError(Exception):
    """The workspace cannot be read at all (no root pyproject, TOML that does not parse)."""


def import_name_for(distribution: str) -> str | None:
    """The import name a distribution must own, or None for the code-less meta-package."""
    if distribution == META_PACKAGE:
        return None
    if distribution == CORE_PACKAGE:
        return "taskq"
    return distribution.replace("-", "_")


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into a WorkspaceError that names the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WorkspaceError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class Member:
    """One workspace member, as its pyproject.toml declares it."""

    path: Path
    pyproject: dict[str, Any]

    @property
    def project(self) -> dict[str, Any]:
        return self.pyproject.get("project", {})

    @property
    def name(self) -> str:
        """The normalized distribution name (empty when the pyproject has none)."""
        return normalize(str(self.project.get("name", "")))

    @property
    def import_name(self) -> str | None:
        return import_name_for(self.name)

    @property
    def version(self) -> str | None:
        """The static version, or None when it is missing or declared dynamic."""
        version = self.project.get("version")
        if not isinstance(version, str) or "version" in self.project.get("dynamic", []):
            return None
        return version

    @property
    def dependencies(self) -> list[Requirement]:
        return [parse_requirement(text) for text in self.project.get("dependencies", [])]

    @property
    def extras(self) -> dict[str, list[Requirement]]:
        """Optional dependencies by normalized extra name."""
        optional: dict[str, list[str]] = self.project.get("optional-dependencies", {})
        return {
            normalize(extra): [parse_requirement(text) for text in texts]
            for extra, texts in optional.items()
        }

    def all_requirements(self) -> list[tuple[str | None, Requirement]]:
        """Every declared requirement with the extra it belongs to (None for the base set)."""
        pairs: list[tuple[str | None, Requirement]] = [(None, r) for r in self.dependencies]
        for extra, requirements in self.extras.items():
            pairs.extend((extra, r) for r in requirements)
        return pairs


@dataclass(frozen=True)
class Workspace:
    """The root pyproject and every member its `[tool.uv.workspace]` globs match."""

    root: Path
    pyproject: dict[str, Any]
    members: dict[str, Member]
    dirs_without_pyproject: list[Path]

    def relative(self, path: Path) -> str:
        """A path as it should appear in a message: relative to the workspace root."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def first_party_closure(self, name: str) -> list[str]:
        """The members `name` installs (base dependencies, transitively), itself first.

        A dependency that asks for a sibling's extra (`taskq-x[y]`) brings what that extra needs.
        """
        order: list[str] = []
        pending = [normalize(name)]
        while pending:
            current = pending.pop(0)
            if current in order or current not in self.members:
                continue
            order.append(current)
            for requirement in self.members[current].dependencies:
                pending.append(requirement.name)
                target = self.members.get(requirement.name)
                if target is not None:
                    for extra in requirement.extras:
                        pending.extend(r.name for r in target.extras.get(extra, []))
        return order


def load_workspace(root: Path) -> Workspace:
    """Read the root pyproject and every member it lists; raise WorkspaceError if unreadable."""
    root = root.resolve()
    pyproject_path = root / "pyproject.toml"
    if not pyproject_path.is_file():
        raise WorkspaceError(f"{pyproject_path} does not exist: not a workspace root")
    pyproject = read_toml(pyproject_path)
    config: dict[str, Any] = pyproject.get("tool", {}).get("uv", {}).get("workspace", {})
    excluded = {p.resolve() for pattern in config.get("exclude", []) for p in root.glob(pattern)}
    members: dict[str, Member] = {}
    missing: list[Path] = []
    for pattern in config.get("members", []):
        for directory in sorted(root.glob(pattern)):
            if not directory.is_dir() or directory.resolve() in excluded:
                continue
            if not (directory / "pyproject.toml").is_file():
                missing.append(directory)
                continue
            member = Member(directory, read_toml(directory / "pyproject.toml"))
            try:
                member.all_requirements()
            except RequirementError as exc:
                raise WorkspaceError(f"{directory / 'pyproject.toml'}: {exc}") from exc
            members[member.name or directory.name] = member
    return Workspace(root, pyproject, members, missing)
