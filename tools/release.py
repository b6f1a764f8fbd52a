"""Prepare the release of one package: bump, changelog, build alone, smoke-test, print the tag.

Usage: `uv run python tools/release.py NAME [--bump patch|minor|major] [--dry-run]`

Each package is versioned and released on its own, so a release touches one package only:
1. bump the static version in its pyproject.toml (and a `__version__ = "..."` literal if the
   package keeps one);
2. move the CHANGELOG's "## Unreleased" entries under "## X.Y.Z (YYYY-MM-DD)", leaving an empty
   Unreleased section on top (an empty Unreleased is refused: a release says what changed);
3. refuse the bump if it breaks a workspace rule that held before (a sibling's `<N` cap that
   would exclude the new major, for instance);
4. refresh uv.lock (`uv lock`), which records member versions, so `uv sync --locked` still works;
5. build the wheel and sdist alone into dist/NAME, install the wheel in a fresh venv and import
   it (tools/wheel_smoke.py);
6. print the tag to create, `NAME==X.Y.Z`.
If a step fails, every file the release changed is restored. `--dry-run` prints what would
change and changes nothing. Exit status: 0 on success, 1 when refused or failed, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from check_workspace import check
from commands import CommandError, run, uv_executable
from requirement import normalize
from tomledit import TomlEditError, set_string
from wheel_smoke import SmokeError, smoke_check
from workspace import REPO_ROOT, Member, WorkspaceError, load_workspace

_FINAL_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_VERSION_LITERAL = re.compile(r"""^(__version__\s*=\s*)(["'])[^"']*\2""", re.MULTILINE)


class ReleaseError(Exception):
    """The release is refused or a step of it failed; the message says which and why."""


def bump(version: str, part: str) -> str:
    """The next version: `patch` 0.1.2 -> 0.1.3, `minor` -> 0.2.0, `major` -> 1.0.0."""
    match = _FINAL_VERSION.match(version)
    if match is None:
        raise ReleaseError(f"version {version!r} is not X.Y.Z; set a final version first")
    major, minor, patch = (int(n) for n in match.groups())
    if part == "major":
        return f"{major + 1}.0.0"
    if part == "minor":
        return f"{major}.{minor + 1}.0"
    if part == "patch":
        return f"{major}.{minor}.{patch + 1}"
    raise ReleaseError(f"unknown bump {part!r}; use patch, minor or major")


def cut_changelog(text: str, version: str, day: date) -> str:
    """Move the Unreleased entries under a dated heading for `version`; refuse if there are none."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## Unreleased")
    except StopIteration:
        raise ReleaseError("CHANGELOG.md has no '## Unreleased' section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    entries = "\n".join(lines[start + 1 : end]).strip("\n")
    if not entries.strip():
        raise ReleaseError(
            "the CHANGELOG's Unreleased section is empty; write what changed there first"
        )
    released = ["## Unreleased", "", f"## {version} ({day.isoformat()})", "", entries]
    rest = lines[end:]
    return "\n".join(lines[:start] + released + (["", *rest] if rest else [])) + "\n"


def _version_edits(member: Member, new_version: str) -> dict[Path, str]:
    """The new text of each file that carries the version."""
    pyproject = member.path / "pyproject.toml"
    edits = {
        pyproject: set_string(
            pyproject.read_text(encoding="utf-8"), "project", "version", new_version
        )
    }
    if member.import_name is not None:
        init = member.path / "src" / member.import_name / "__init__.py"
        if init.is_file():
            source = init.read_text(encoding="utf-8")
            updated = _VERSION_LITERAL.sub(
                lambda m: f"{m[1]}{m[2]}{new_version}{m[2]}", source, count=1
            )
            if updated != source:
                edits[init] = updated
    return edits


def release(root: Path, name: str, part: str, *, dry_run: bool, day: date) -> str:
    """Prepare the release and return its tag; raise ReleaseError, restoring files, on failure."""
    ws = load_workspace(root)
    member = ws.members[name]
    if member.version is None:
        raise ReleaseError("pyproject.toml has no static version to bump")
    new_version = bump(member.version, part)
    changelog = member.path / "CHANGELOG.md"
    if not changelog.is_file():
        raise ReleaseError(f"{ws.relative(changelog)} does not exist")
    edits = _version_edits(member, new_version)
    edits[changelog] = cut_changelog(changelog.read_text(encoding="utf-8"), new_version, day)
    tag = f"{name}=={new_version}"
    if dry_run:
        print(
            f"would release {name} {member.version} -> {new_version} ({day.isoformat()}), changing:"
        )
        for path in edits:
            print(f"  {ws.relative(path)}")
        return tag
    lock = ws.root / "uv.lock"
    originals = {
        path: path.read_text(encoding="utf-8") for path in [*edits, lock] if path.is_file()
    }
    problems_before = set(check(ws))
    try:
        for path, text in edits.items():
            path.write_text(text, encoding="utf-8")
        bumped = load_workspace(root)
        new_problems = [p for p in check(bumped) if p not in problems_before]
        if new_problems:
            raise ReleaseError("the bump breaks workspace rules:\n  " + "\n  ".join(new_problems))
        if lock.is_file():
            run([uv_executable(), "lock"], ws.root)
        result = smoke_check(bumped, name)
    except BaseException:
        _restore(originals)
        raise
    print(f"{name} {member.version} -> {new_version}: built {result.wheel} and {result.sdist}")
    print(f"fresh venv held {', '.join(f'{n}=={v}' for n, v in sorted(result.installed.items()))}")
    return tag


def _restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare the release of one package.")
    parser.add_argument("name", help="distribution name, e.g. taskq-protocol")
    parser.add_argument("--bump", choices=("patch", "minor", "major"), default="patch")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would change; change nothing"
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="workspace root")
    args = parser.parse_args(argv)
    name = normalize(args.name)
    try:
        members = load_workspace(args.root).members
    except WorkspaceError as exc:
        print(f"release: cannot read the workspace: {exc}", file=sys.stderr)
        return 2
    if name not in members:
        print(
            f"release: no member {args.name!r}; members: {', '.join(sorted(members))}",
            file=sys.stderr,
        )
        return 2
    try:
        tag = release(args.root, name, args.bump, dry_run=args.dry_run, day=date.today())
    except (ReleaseError, TomlEditError, SmokeError, CommandError, WorkspaceError) as exc:
        print(f"release: {name}: {exc}", file=sys.stderr)
        return 1
    print(f"tag: {tag}")
    if not args.dry_run:
        print(
            f"next: commit the release ('Release {tag}'), push, then run the release workflow "
            f"with package={name}: it publishes dist/{name} and pushes the tag"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
