"""Check that the workspace keeps its own rules: names, files, versions, ranges, extras, layers.

Usage: `uv run python tools/check_workspace.py [--root DIR]`

These rules are what lets each package be released alone and installed alone, so they are
checked on every push instead of remembered. Exit status: 0 when every rule holds, 1 when any
does not (one line per problem, each saying the fix), 2 when the workspace cannot be read.
It also prints, as information, the Celery bundles that no member serves yet.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bundles import ALLOWED_EXTRAS, CELERY_BUNDLES
from requirement import Requirement, RequirementError, release_tuple
from workspace import (
    LAYERS,
    META_PACKAGE,
    PROTOCOL_PACKAGE,
    REPO_ROOT,
    Member,
    Workspace,
    WorkspaceError,
    import_name_for,
    load_workspace,
)

_STATIC_VERSION = re.compile(r"^\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
_VERSION_LITERAL = re.compile(r"""^__version__\s*=\s*["']([^"']*)["']""", re.MULTILINE)
_INSTALL_HINT = re.compile(
    r"""pip install\s+["']?(?P<dist>taskq(?:-[a-z0-9]+)*)"""
    r"""(?:\[(?P<extras>[^\]{]*(?:\{[^}]*\})?[^\]]*)\]?)?"""  # a {placeholder} may hold [ ]
)
_EXTRA_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def check_member_layout(ws: Workspace, member: Member) -> Iterator[str]:
    """Directory, distribution and import name agree, and the standard files are there."""
    where = ws.relative(member.path)
    if not member.name:
        yield f"{where}: pyproject.toml has no [project] name; set name = {member.path.name!r}"
        return
    if member.path.name != member.name:
        yield (
            f"{where}: directory and distribution name {member.name!r} disagree; "
            f"rename the directory to packages/{member.name} or the distribution to "
            f"{member.path.name!r}"
        )
    yield from _check_import_package(ws, member)
    tests = member.path / "tests"
    if not any(tests.rglob("test_*.py")):
        yield f"{where}: no tests/test_*.py; add at least one test file under {where}/tests/"
    readme = member.path / "README.md"
    if not readme.is_file() or not readme.read_text(encoding="utf-8").strip():
        yield f"{where}: README.md is missing or empty; write one saying what the package is for"
    yield from _check_changelog(ws, member)
    yield from _check_version(ws, member)


def _check_import_package(ws: Workspace, member: Member) -> Iterator[str]:
    where = ws.relative(member.path)
    src = member.path / "src"
    found = sorted(
        p.name
        for p in (src.iterdir() if src.is_dir() else [])
        if p.is_dir()
        and p.name != "__pycache__"
        and not p.name.endswith((".egg-info", ".dist-info"))
    )
    expected = member.import_name
    if expected is None:
        if found:
            yield (
                f"{where}: the meta-package holds code (src/{', src/'.join(found)}); "
                "move it to the member that owns that import name"
            )
        return
    if not (src / expected / "__init__.py").is_file():
        yield (
            f"{where}: distribution {member.name!r} must own `import {expected}`; "
            f"create src/{expected}/__init__.py (the src/ layout)"
        )
    elif not (src / expected / "py.typed").is_file():
        yield f"{where}: src/{expected}/py.typed is missing; add the empty marker so types ship"
    for stray in (name for name in found if name != expected):
        yield (
            f"{where}: src/{stray} is not the import name {expected!r} of {member.name!r}; "
            "one distribution owns one import name: rename it or move it to its own member"
        )
    wheel: dict[str, Any] = (
        member.pyproject.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    ).get("wheel", {})
    if wheel.get("packages") != [f"src/{expected}"]:
        yield (
            f"{where}: pyproject.toml must ship exactly src/{expected}; set "
            f'[tool.hatch.build.targets.wheel] packages = ["src/{expected}"]'
        )


def _check_changelog(ws: Workspace, member: Member) -> Iterator[str]:
    where = ws.relative(member.path)
    changelog = member.path / "CHANGELOG.md"
    if not changelog.is_file():
        yield f"{where}: CHANGELOG.md is missing; create it with a '## Unreleased' section on top"
        return
    headings = [
        line.strip()
        for line in changelog.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    ]
    if not headings or headings[0] != "## Unreleased":
        yield f"{where}: CHANGELOG.md must start its sections with '## Unreleased'; add it on top"


def _check_version(ws: Workspace, member: Member) -> Iterator[str]:
    where = ws.relative(member.path)
    version = member.version
    if version is None:
        yield (
            f'{where}: no static version; set version = "0.1.0" in [project] and drop '
            '"version" from dynamic (tools/release.py bumps it)'
        )
        return
    if not _STATIC_VERSION.match(version):
        yield f"{where}: version {version!r} is not X.Y.Z (PEP 440 release); write e.g. 0.1.0"
    if member.import_name is None:
        return
    init = member.path / "src" / member.import_name / "__init__.py"
    literal = _VERSION_LITERAL.search(init.read_text(encoding="utf-8")) if init.is_file() else None
    if literal is not None and literal.group(1) != version:
        yield (
            f"{where}: src/{member.import_name}/__init__.py says __version__ = "
            f"{literal.group(1)!r} but pyproject.toml says {version!r}; make them equal"
        )


def check_protocol_alone(ws: Workspace) -> Iterator[str]:
    """taskq-protocol declares no dependency at all, optional ones included."""
    member = ws.members.get(PROTOCOL_PACKAGE)
    if member is None:
        return
    for extra, requirement in member.all_requirements():
        scope = "dependencies" if extra is None else f"extra {extra!r}"
        yield (
            f"{ws.relative(member.path)}: {PROTOCOL_PACKAGE} must have no dependencies but its "
            f"{scope} lists {requirement.text!r}; remove it (move the code needing it up a layer)"
        )


def check_first_party_ranges(ws: Workspace) -> Iterator[str]:
    """A first-party range is `>=X.Y,<N` (a floor and the next major), never a pin."""
    for member in ws.members.values():
        for extra, requirement in member.all_requirements():
            if not requirement.name.startswith("taskq"):
                continue
            where = f"{ws.relative(member.path)}: {requirement.text!r}"
            if extra is not None:
                where += f" (extra {extra!r})"
            problem = _range_problem(requirement)
            if problem:
                yield f"{where}: {problem}"
                continue
            target = ws.members.get(requirement.name)
            if target is not None and target.version is not None:
                current = release_tuple(target.version)
                floor, cap = _floor_and_cap(requirement)
                if not floor <= current < (cap,):
                    yield (
                        f"{where}: excludes the workspace's {requirement.name} {target.version}; "
                        "move the range so it admits the current version"
                    )


def _range_problem(requirement: Requirement) -> str | None:
    ops = sorted(clause.op for clause in requirement.clauses)
    if any(op in ("==", "===", "~=") for op in ops):
        return "first-party dependencies are never pinned; write a range like '>=0.1,<1'"
    if ops != ["<", ">="]:
        return "first-party ranges need a floor and a major cap; write '>=X.Y,<N'"
    try:
        floor, cap = _floor_and_cap(requirement)
    except RequirementError as exc:
        return f"{exc}; write '>=X.Y,<N'"
    if cap != floor[0] + 1:
        wanted = f">={floor[0]}.{floor[1]},<{floor[0] + 1}"
        return f"the cap must be the major after the floor; write '{wanted}'"
    return None


def _floor_and_cap(requirement: Requirement) -> tuple[tuple[int, ...], int]:
    versions = {clause.op: clause.version for clause in requirement.clauses}
    cap = versions["<"]
    if not cap.isdigit():
        raise RequirementError(f"the cap {cap!r} is not a bare major number")
    return release_tuple(versions[">="]), int(cap)


def check_meta_package(ws: Workspace) -> Iterator[str]:
    """The meta-package's extras are bundle names and point at real members and extras."""
    meta = ws.members.get(META_PACKAGE)
    if meta is None:
        yield f"packages/{META_PACKAGE}: the meta-package is missing; create it (extras, no code)"
        return
    where = ws.relative(meta.path)
    for requirement in meta.dependencies:
        yield from _check_pointer(ws, where, "dependencies", requirement)
    for extra, requirements in meta.extras.items():
        if extra not in ALLOWED_EXTRAS:
            yield (
                f"{where}: extra {extra!r} is neither a Celery bundle nor a known taskq addition; "
                "rename it to the bundle it serves (tools/bundles.py) or add it to TASKQ_ADDITIONS"
            )
        for requirement in requirements:
            yield from _check_pointer(ws, where, f"extra {extra!r}", requirement)


def _check_pointer(
    ws: Workspace, where: str, scope: str, requirement: Requirement
) -> Iterator[str]:
    target = ws.members.get(requirement.name)
    if target is None:
        yield (
            f"{where}: {scope} points at {requirement.name!r}, which is not a workspace member; "
            "create it (tools/new_integration.py) or fix the name"
        )
        return
    for extra in requirement.extras:
        if extra not in target.extras:
            yield (
                f"{where}: {scope} asks for {requirement.name}[{extra}], but {requirement.name} "
                f"has no extra {extra!r}; add it to {ws.relative(target.path)}/pyproject.toml "
                "or fix the name"
            )


def check_install_hints(ws: Workspace) -> Iterator[str]:
    """Every `pip install 'taskq[x]'` in the sources names an extra that really exists.

    The hints are found as text, so they must be written literally: a hint built from a
    placeholder (`taskq[{extra}]`) cannot be checked and is reported as such.
    """
    for member in ws.members.values():
        for path in sorted((member.path / "src").rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            for number, line in enumerate(lines, start=1):
                for hint in _INSTALL_HINT.finditer(line):
                    where = f"{ws.relative(path)}:{number}: {hint.group(0)!r}"
                    yield from _check_hint(ws, where, hint.group("dist"), hint.group("extras"))


def _check_hint(ws: Workspace, where: str, dist: str, extras: str | None) -> Iterator[str]:
    target = ws.members.get(dist)
    if target is None:
        yield f"{where}: {dist!r} is not a workspace member; hint at an existing package"
        return
    if extras is None:
        return
    if "{" in extras:
        yield (
            f"{where}: the extra is filled in from a placeholder, so it cannot be checked; "
            f"write each hint whole, as one literal (e.g. \"pip install '{dist}[yaml]'\")"
        )
        return
    for name in (part.strip() for part in extras.split(",")):
        if not _EXTRA_NAME.match(name):
            yield f'{where}: {name!r} is not an extra name; write e.g. "{dist}[yaml]"'
        elif name not in target.extras:
            known = ", ".join(sorted(target.extras)) or "none"
            yield (
                f"{where}: {dist} has no extra {name!r} (it has: {known}); fix the hint or add "
                f"the extra to {ws.relative(target.path)}/pyproject.toml"
            )


def check_import_contracts(ws: Workspace) -> Iterator[str]:
    """The root's import-linter config covers every member present, layers in order."""
    config: dict[str, Any] = ws.pyproject.get("tool", {}).get("importlinter", {})
    root_packages: list[str] = config.get("root_packages", [])
    for member in ws.members.values():
        if member.import_name is not None and member.import_name not in root_packages:
            yield (
                f"pyproject.toml: [tool.importlinter] root_packages lacks {member.import_name!r} "
                f"({member.name}); add it so the import contracts cover it"
            )
    expected = [import_name_for(name) for name in reversed(LAYERS) if name in ws.members]
    layer_contracts: list[dict[str, Any]] = [
        contract for contract in config.get("contracts", []) if contract.get("type") == "layers"
    ]
    if not layer_contracts:
        yield f"pyproject.toml: no import-linter layers contract; add one with layers = {expected}"
        return
    for contract in layer_contracts:
        if contract.get("layers") != expected:
            yield (
                f"pyproject.toml: import-linter contract {contract.get('name', '?')!r} lists "
                f"layers {contract.get('layers')}, but the layered members present are {expected} "
                "(highest first); make them equal"
            )


def check_root_pulls_members(ws: Workspace) -> Iterator[str]:
    """The root depends on every member through a workspace source, so one sync gets them all."""
    for directory in ws.dirs_without_pyproject:
        yield (
            f"{ws.relative(directory)}: matched by [tool.uv.workspace] members but has no "
            "pyproject.toml; add one or remove the directory"
        )
    try:
        root_dependencies = {
            requirement.name for _, requirement in Member(ws.root, ws.pyproject).all_requirements()
        }
    except RequirementError as exc:
        yield f"pyproject.toml: {exc}"
        return
    sources: dict[str, Any] = ws.pyproject.get("tool", {}).get("uv", {}).get("sources", {})
    for name in ws.members:
        if name not in root_dependencies:
            yield f'pyproject.toml: [project] dependencies lacks "{name}"; add it'
        if sources.get(name) != {"workspace": True}:
            yield f"pyproject.toml: [tool.uv.sources] needs {name} = {{ workspace = true }}"


def check(ws: Workspace) -> list[str]:
    """Every problem in the workspace, one message each."""
    problems: list[str] = []
    for member in ws.members.values():
        problems.extend(check_member_layout(ws, member))
    for rule in (
        check_protocol_alone,
        check_first_party_ranges,
        check_meta_package,
        check_install_hints,
        check_import_contracts,
        check_root_pulls_members,
    ):
        problems.extend(rule(ws))
    return problems


def unserved_bundles(ws: Workspace) -> list[str]:
    """Celery bundles the meta-package has no extra for yet."""
    meta = ws.members.get(META_PACKAGE)
    offered = set(meta.extras) if meta is not None else set[str]()
    return [bundle for bundle in CELERY_BUNDLES if bundle not in offered]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="workspace root")
    args = parser.parse_args(argv)
    try:
        ws = load_workspace(args.root)
    except WorkspaceError as exc:
        print(f"check_workspace: cannot read the workspace: {exc}", file=sys.stderr)
        return 2
    problems = check(ws)
    for problem in problems:
        print(problem)
    waiting = unserved_bundles(ws)
    if waiting:
        print(f"info: bundles no member serves yet ({len(waiting)}): {', '.join(waiting)}")
    if problems:
        print(f"check_workspace: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_workspace: {len(ws.members)} members, all rules hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
