"""Just enough of PEP 508 and PEP 440 to read the workspace's own dependency declarations.

The tools stay stdlib-only so they run before anything is installed; the requirements they
read are the simple kind this repo writes (`name[extras]>=X.Y,<N; marker`), so a small parser
that rejects anything else is safer than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REQUIREMENT = re.compile(
    r"""
    ^\s*(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*
    (?:\[(?P<extras>[^\]]*)\])?\s*
    \(?(?P<specifier>[^;@()]*?)\)?\s*
    (?:;(?P<marker>.*))?$
    """,
    re.VERBOSE,
)
_CLAUSE = re.compile(r"^\s*(?P<op>===|~=|==|!=|<=|>=|<|>)\s*(?P<version>[A-Za-z0-9.*+!_-]+)\s*$")
_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)")


class RequirementError(ValueError):
    """A dependency string this parser does not understand."""


@dataclass(frozen=True)
class Clause:
    """One comparison of a version specifier, like `>=0.1`."""

    op: str
    version: str


@dataclass(frozen=True)
class Requirement:
    """A parsed dependency: normalized name, requested extras, specifier clauses."""

    text: str
    name: str
    extras: tuple[str, ...]
    clauses: tuple[Clause, ...]


def normalize(name: str) -> str:
    """PEP 503/685 normalization, so `Taskq_Redis` and `taskq-redis` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> Requirement:
    """Parse `name[extra,...] spec, spec ; marker`; raise RequirementError otherwise."""
    match = _REQUIREMENT.match(text)
    if match is None:
        raise RequirementError(f"cannot parse requirement {text!r}")
    extras_text = match.group("extras") or ""
    extras = tuple(normalize(e.strip()) for e in extras_text.split(",") if e.strip())
    clauses: list[Clause] = []
    specifier = match.group("specifier").strip()
    if specifier:
        for part in specifier.split(","):
            clause = _CLAUSE.match(part)
            if clause is None:
                raise RequirementError(f"cannot parse version clause {part.strip()!r} in {text!r}")
            clauses.append(Clause(clause.group("op"), clause.group("version")))
    return Requirement(text, normalize(match.group("name")), extras, tuple(clauses))


def release_tuple(version: str) -> tuple[int, ...]:
    """The numeric release segment of a version (`0.1.0rc1` -> (0, 1, 0)), zero-padded to 3."""
    match = _RELEASE.match(version.strip())
    if match is None:
        raise RequirementError(f"not a version: {version!r}")
    numbers = tuple(int(part) for part in match.group(1).split("."))
    return numbers + (0,) * (3 - len(numbers))
