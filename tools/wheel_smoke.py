"""Prove one package installs and imports on its own: build it alone, install it in a fresh venv.

Usage: `uv run python tools/wheel_smoke.py NAME [--out-dir DIR] [--root DIR]`

Inside the workspace every member is installed, so a missing dependency declaration, a module
left out of the wheel or a stray import of a sibling goes unnoticed. This builds the package's
wheel and sdist alone (`uv build --package NAME --no-sources`, into dist/NAME by default),
creates an empty venv, installs that wheel, and imports it from there.

First-party dependencies come from wheels freshly built from this workspace (into a temporary
directory, passed to the installer by path so a same-named project on the index can never be
picked instead); third-party ones come from the index. So the check proves the package works
with the workspace's current siblings: release them in dependency order, lowest layer first.

After the install the venv must hold exactly the package's first-party closure, and a package
with no dependencies (taskq-protocol above all) must be alone in it. Each import must come from
the venv and ship py.typed. Exit status: 0 on success, 1 when the check fails, 2 for an unknown
package or an unreadable workspace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from commands import CommandError, run, uv_executable
from requirement import normalize
from workspace import PROTOCOL_PACKAGE, REPO_ROOT, Workspace, WorkspaceError, load_workspace

_IMPORT_PROBE = """
import importlib, json, pathlib, sys
found = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    path = pathlib.Path(module.__file__).resolve()
    found[name] = {"file": str(path), "typed": (path.parent / "py.typed").is_file()}
print(json.dumps(found))
"""


class SmokeError(Exception):
    """The package does not build, install alone, or import from a fresh venv."""


@dataclass(frozen=True)
class SmokeResult:
    """What the check built and what the fresh venv held afterwards."""

    wheel: Path
    sdist: Path
    installed: dict[str, str]
    """Normalized distribution name -> version, as `uv pip list` reports the venv."""
    imported: tuple[str, ...]


def build_alone(ws: Workspace, name: str, out_dir: Path) -> tuple[Path, Path]:
    """Build the wheel and sdist of one member without workspace sources; return their paths."""
    member = ws.members[name]
    run(
        [uv_executable(), "build", "--package", name, "--no-sources", "--out-dir", str(out_dir)],
        ws.root,
    )
    stem = f"{name.replace('-', '_')}-{member.version}"
    wheels = sorted(out_dir.glob(f"{stem}-*.whl"))
    sdist = out_dir / f"{stem}.tar.gz"
    if len(wheels) != 1 or not sdist.is_file():
        raise SmokeError(
            f"uv build of {name} did not leave one {stem} wheel and sdist in {out_dir}"
        )
    return wheels[0], sdist


def smoke_check(ws: Workspace, name: str, out_dir: Path | None = None) -> SmokeResult:
    """Build `name` alone into out_dir (default dist/NAME), install it in a new venv, import it."""
    name = normalize(name)
    member = ws.members[name]
    out_dir = out_dir if out_dir is not None else ws.root / "dist" / name
    closure = ws.first_party_closure(name)
    uv = uv_executable()
    with tempfile.TemporaryDirectory(prefix="taskq-smoke-") as tmp_text:
        tmp = Path(tmp_text)
        wheel, sdist = build_alone(ws, name, out_dir)
        dependency_wheels = [build_alone(ws, dep, tmp / "wheels")[0] for dep in closure[1:]]
        venv = tmp / "venv"
        run([uv, "venv", "--python", sys.executable, str(venv)], tmp)
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        run(
            [uv, "pip", "install", "--python", str(python), str(wheel)]
            + [str(w) for w in dependency_wheels],
            tmp,
        )
        listed = json.loads(
            run([uv, "pip", "list", "--python", str(python), "--format", "json"], tmp)
        )
        installed = {normalize(entry["name"]): entry["version"] for entry in listed}
        _check_installed(ws, name, closure, installed)
        import_names = [n for n in (ws.members[m].import_name for m in closure) if n]
        if member.import_name is not None:
            import_names = [member.import_name]
        _check_imports(python, venv, tmp, import_names)
    return SmokeResult(wheel, sdist, installed, tuple(import_names))


def _check_installed(
    ws: Workspace, name: str, closure: list[str], installed: dict[str, str]
) -> None:
    member = ws.members[name]
    if installed.get(name) != member.version:
        raise SmokeError(f"the fresh venv holds {name} {installed.get(name)}, not {member.version}")
    if name == PROTOCOL_PACKAGE or not member.dependencies:
        others = sorted(n for n in installed if n != name)
        if others:
            raise SmokeError(
                f"{name} must install alone, but the fresh venv also holds {', '.join(others)}; "
                "remove those dependencies from its pyproject.toml"
            )
    first_party = {n for n in installed if n.startswith("taskq")}
    if first_party != set(closure):
        raise SmokeError(
            f"installing {name} brought the first-party set {sorted(first_party)}, expected "
            f"{sorted(closure)} (its declared dependencies); fix its pyproject.toml"
        )


def _check_imports(python: Path, venv: Path, cwd: Path, import_names: list[str]) -> None:
    """Import each name in the venv's isolated interpreter: from the venv, with py.typed."""
    try:
        output = run([str(python), "-I", "-c", _IMPORT_PROBE, *import_names], cwd)
    except CommandError as exc:
        raise SmokeError(
            f"importing {', '.join(import_names)} in the fresh venv failed: {exc}"
        ) from exc
    found: dict[str, dict[str, object]] = json.loads(output)
    venv_root = venv.resolve()
    for import_name, facts in found.items():
        location = Path(str(facts["file"]))
        if not location.is_relative_to(venv_root):
            raise SmokeError(f"`import {import_name}` came from {location}, not the fresh venv")
        if facts["typed"] is not True:
            raise SmokeError(f"the installed {import_name} has no py.typed; ship it in the wheel")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build one package alone and import it from a fresh venv."
    )
    parser.add_argument("name", help="distribution name, e.g. taskq-protocol")
    parser.add_argument(
        "--out-dir", type=Path, help="where the wheel and sdist go (default dist/NAME)"
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="workspace root")
    args = parser.parse_args(argv)
    try:
        ws = load_workspace(args.root)
    except WorkspaceError as exc:
        print(f"wheel_smoke: cannot read the workspace: {exc}", file=sys.stderr)
        return 2
    name = normalize(args.name)
    if name not in ws.members:
        print(
            f"wheel_smoke: no member {args.name!r}; members: {', '.join(sorted(ws.members))}",
            file=sys.stderr,
        )
        return 2
    try:
        result = smoke_check(ws, name, args.out_dir)
    except (SmokeError, CommandError) as exc:
        print(f"wheel_smoke: {name}: {exc}", file=sys.stderr)
        return 1
    venv = ", ".join(f"{n}=={v}" for n, v in sorted(result.installed.items()))
    print(f"wheel_smoke: {name} OK: built {result.wheel.name} and {result.sdist.name}")
    print(f"wheel_smoke: fresh venv held {venv}; imported {', '.join(result.imported)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
