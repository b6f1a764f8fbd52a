"""Create packages/taskq-TECH from tools/templates/integration and register it in the workspace.

Usage: `uv run python tools/new_integration.py TECH [--extra NAME]... [--root DIR]`

A new technology gets one package that passes tools/check_workspace.py from its first commit:
the src/ layout with py.typed, a smoke test, README, CHANGELOG, and entry-point groups ready for
its URL schemes. The root pyproject gains the member in its dependencies, [tool.uv.sources] and
import-linter root_packages (and ruff's first-party list); the meta-package gains an extra per
`--extra` (default: TECH, when TECH is a bundle name). The TOML files are edited as text, so
their comments and layout stay, and every edit is checked by re-parsing (tools/tomledit.py).
Nothing is written unless every edit can be made. Exit status: 0 created, 1 refused, 2 bad
arguments or an unreadable workspace.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from bundles import ALLOWED_EXTRAS
from requirement import release_tuple
from tomledit import TomlEditError, append_to_array, append_to_table
from workspace import (
    CORE_PACKAGE,
    META_PACKAGE,
    PROTOCOL_PACKAGE,
    REPO_ROOT,
    Workspace,
    WorkspaceError,
    load_workspace,
)

TEMPLATE = Path(__file__).resolve().parent / "templates" / "integration"
TEMPLATE_SUFFIX = ".tmpl"
_TECH = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_PLACEHOLDER = re.compile(r"\{\{\s*\w+\s*\}\}")


class IntegrationError(Exception):
    """The package cannot be created as asked; the message says why and what to do."""


def placeholders(ws: Workspace, tech: str, extras: list[str]) -> dict[str, str]:
    """The values substituted into the template's `{{name}}` placeholders and file names."""
    dist = f"taskq-{tech}"
    # An integration builds on taskq-core's contracts; until taskq-core exists, on the protocol.
    base = ws.members.get(CORE_PACKAGE) or ws.members[PROTOCOL_PACKAGE]
    major, minor, _ = release_tuple(base.version or "0.1.0")
    install = [f"pip install {dist}"]
    install += [
        f"pip install 'taskq[{extra}]'  # the same, through the meta-package" for extra in extras
    ]
    return {
        "tech": tech,
        "tech_id": tech.replace("-", "_"),
        "dist": dist,
        "import_name": f"taskq_{tech.replace('-', '_')}",
        "title": " ".join(part.capitalize() for part in tech.split("-")),
        "class_prefix": "".join(part.capitalize() for part in tech.split("-")),
        "core_requirement": f"{base.name}>={major}.{minor},<{major + 1}",
        "install_command": "\n".join(install),
    }


def render(values: dict[str, str]) -> dict[Path, str]:
    """Every template file, with placeholders filled in, by its path inside the new package."""
    files: dict[Path, str] = {}
    for source in sorted(TEMPLATE.rglob(f"*{TEMPLATE_SUFFIX}")):
        relative = source.relative_to(TEMPLATE).as_posix().removesuffix(TEMPLATE_SUFFIX)
        relative = relative.replace("__import_name__", values["import_name"])
        relative = relative.replace("__tech_id__", values["tech_id"])
        text = source.read_text(encoding="utf-8")
        for key, value in values.items():
            text = re.sub(r"\{\{\s*" + key + r"\s*\}\}", lambda _, v=value: v, text)
        leftover = _PLACEHOLDER.search(text)
        if leftover:
            raise IntegrationError(f"template {source} uses unknown placeholder {leftover[0]}")
        files[Path(relative)] = text
    return files


def registrations(ws: Workspace, values: dict[str, str], extras: list[str]) -> dict[Path, str]:
    """The new text of the root and meta pyproject files with the member registered."""
    dist, import_name = values["dist"], values["import_name"]
    root_path = ws.root / "pyproject.toml"
    root = root_path.read_text(encoding="utf-8")
    root = append_to_array(root, "project", "dependencies", f'"{dist}"')
    root = append_to_table(root, "tool.uv.sources", f"{dist} = {{ workspace = true }}")
    root = append_to_array(root, "tool.importlinter", "root_packages", f'"{import_name}"')
    isort = ws.pyproject.get("tool", {}).get("ruff", {}).get("lint", {}).get("isort", {})
    if "known-first-party" in isort:
        root = append_to_array(
            root, "tool.ruff.lint.isort", "known-first-party", f'"{import_name}"'
        )
    edits = {root_path: root}
    meta = ws.members[META_PACKAGE]
    meta_path = meta.path / "pyproject.toml"
    text = meta_path.read_text(encoding="utf-8")
    for extra in extras:
        line = f'{extra} = ["{dist}>=0.1,<1"]'
        text = append_to_table(text, "project.optional-dependencies", line)
    if extras and "sources" in meta.pyproject.get("tool", {}).get("uv", {}):
        text = append_to_table(text, "tool.uv.sources", f"{dist} = {{ workspace = true }}")
    edits[meta_path] = text
    return edits


def create(ws: Workspace, tech: str, extras: list[str]) -> Path:
    """Create and register the package; raise IntegrationError, writing nothing, if it cannot."""
    if not _TECH.match(tech):
        raise IntegrationError(
            f"{tech!r} is not a technology name; use lowercase letters, digits and dashes (redis)"
        )
    dist = f"taskq-{tech}"
    target = ws.root / "packages" / dist
    if target.exists() or dist in ws.members:
        raise IntegrationError(f"{ws.relative(target)} already exists")
    if META_PACKAGE not in ws.members or PROTOCOL_PACKAGE not in ws.members:
        raise IntegrationError(f"the workspace needs {META_PACKAGE} and {PROTOCOL_PACKAGE} first")
    offered = ws.members[META_PACKAGE].extras
    for extra in extras:
        if extra not in ALLOWED_EXTRAS:
            raise IntegrationError(
                f"--extra {extra!r} is not a Celery bundle name nor a known taskq addition "
                "(tools/bundles.py); pick the bundle this package serves"
            )
        if extra in offered:
            owner = ", ".join(r.name for r in offered[extra])
            raise IntegrationError(f"the meta-package's extra {extra!r} already installs {owner}")
    values = placeholders(ws, tech, extras)
    files = render(values)
    try:
        edits = registrations(ws, values, extras)
    except TomlEditError as exc:
        raise IntegrationError(str(exc)) from exc
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for path, text in edits.items():
        path.write_text(text, encoding="utf-8")
    return target


def next_steps(ws: Workspace, target: Path, extras: list[str]) -> str:
    where = ws.relative(target)
    steps = [
        f"Created {where} and registered it in pyproject.toml"
        + (f" and the meta-package extra(s) {', '.join(extras)}." if extras else "."),
        "Next:",
        f"  1. Add the client library to {where}/pyproject.toml [project] dependencies.",
        "  2. Run `uv lock && uv sync` so the workspace environment includes the package.",
        "  3. Write the transport and/or result backend against taskq.contracts, and register each",
        f"     class under its URL scheme in {where}/pyproject.toml (taskq.transports/backends).",
        "  4. Run the taskq-testing conformance suites against a real server in its tests, and",
        "     add that server as a service to the test job in .github/workflows/ci.yml.",
        "  5. Check: `uv run python tools/check_workspace.py && uv run pytest " + where + "`.",
    ]
    return "\n".join(steps)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create a taskq-TECH integration package.")
    parser.add_argument("tech", help="technology name: the package becomes taskq-TECH")
    parser.add_argument(
        "--extra",
        action="append",
        dest="extras",
        metavar="NAME",
        help="meta-package extra that installs it (repeatable; default TECH if a bundle name)",
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="workspace root")
    args = parser.parse_args(argv)
    extras: list[str] = list(dict.fromkeys(args.extras or []))
    if args.extras is None and args.tech in ALLOWED_EXTRAS:
        extras = [args.tech]
    try:
        ws = load_workspace(args.root)
    except WorkspaceError as exc:
        print(f"new_integration: cannot read the workspace: {exc}", file=sys.stderr)
        return 2
    try:
        target = create(ws, args.tech, extras)
    except IntegrationError as exc:
        print(f"new_integration: {exc}", file=sys.stderr)
        return 1
    if not extras:
        print(f"note: {args.tech!r} is not a bundle name, so no meta-package extra was added")
    print(next_steps(ws, target, extras))
    return 0


if __name__ == "__main__":
    sys.exit(main())
