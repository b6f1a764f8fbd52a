"""Small edits to TOML files as text, so comments, order and layout survive.

The stdlib reads TOML but cannot write it, and rewriting a pyproject from a parsed dict would
drop every comment. So each edit changes the fewest lines it can, then parses the result and
compares it with the parsed original plus the intended change: an edit that would have changed
anything else raises TomlEditError instead of writing a surprise.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import tomllib

_HEADER = re.compile(r"^\[(?!\[)\s*(?P<name>[^\]]+?)\s*\]\s*(?:#.*)?$")
_ANY_HEADER = re.compile(r"^\[")


class TomlEditError(Exception):
    """The edit cannot be made as text without touching something else; do it by hand."""


def set_string(text: str, table: str, key: str, value: str) -> str:
    """Replace the basic-string value of `key` in `[table]`."""
    lines = text.splitlines(keepends=True)
    start, end = _table_span(lines, table)
    pattern = re.compile(rf'^(\s*{re.escape(key)}\s*=\s*)"[^"\\]*"')
    for index in range(start, end):
        if pattern.match(lines[index]):
            lines[index] = pattern.sub(lambda m: f'{m.group(1)}"{value}"', lines[index], count=1)
            break
    else:
        raise TomlEditError(f'[{table}] has no line `{key} = "..."` to change')

    def change(doc: dict[str, Any]) -> None:
        _table(doc, table)[key] = value

    return _verified(text, "".join(lines), change, f"[{table}] {key}")


def append_to_array(text: str, table: str, key: str, item: str) -> str:
    """Append `item` (a TOML value as written, e.g. '"taskq-redis"') to the array `key`."""
    lines = text.splitlines(keepends=True)
    start, end = _table_span(lines, table)
    opening = re.compile(rf"^\s*{re.escape(key)}\s*=\s*\[")
    index = next((i for i in range(start, end) if opening.match(lines[i])), None)
    if index is None:
        raise TomlEditError(f"[{table}] has no array `{key} = [...]`")
    if _parses(lines[index]):
        lines[index] = _append_inline(lines[index], item)
    else:
        _append_multiline(lines, index, end, item)

    def change(doc: dict[str, Any]) -> None:
        _table(doc, table)[key].append(tomllib.loads(f"v = {item}")["v"])

    return _verified(text, "".join(lines), change, f"[{table}] {key}")


def append_to_table(text: str, table: str, line: str) -> str:
    """Add the `key = value` line at the end of `[table]`, creating the table if missing."""
    entry = tomllib.loads(line)
    lines = text.splitlines(keepends=True)
    try:
        start, end = _table_span(lines, table)
    except TomlEditError:
        separator = "" if text.endswith("\n") or not text else "\n"
        new_text = f"{text}{separator}\n[{table}]\n{line}\n"
    else:
        last = start - 1
        for index in range(start, end):
            stripped = lines[index].strip()
            if stripped and not stripped.startswith("#"):
                last = index
        lines.insert(last + 1, f"{line}\n")
        new_text = "".join(lines)

    def change(doc: dict[str, Any]) -> None:
        _table(doc, table, create=True).update(entry)

    return _verified(text, new_text, change, f"[{table}]")


def _table_span(lines: list[str], table: str) -> tuple[int, int]:
    """The body of `[table]`: from the line after its header up to the next header."""
    wanted = _normal_header(table)
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match and _normal_header(match.group("name")) == wanted:
            end = next(
                (j for j in range(index + 1, len(lines)) if _ANY_HEADER.match(lines[j])),
                len(lines),
            )
            return index + 1, end
    raise TomlEditError(f"no [{table}] table")


def _normal_header(name: str) -> str:
    if '"' in name or "'" in name:
        raise TomlEditError(f"[{name}]: quoted keys are not supported; edit it by hand")
    return ".".join(part.strip() for part in name.split("."))


def _append_inline(line: str, item: str) -> str:
    """Insert before the `]` that closes a one-line array (the one whose prefix still parses)."""
    whole = tomllib.loads(line)
    for close in (i for i in range(len(line) - 1, -1, -1) if line[i] == "]"):
        if _parses(line[: close + 1]) and tomllib.loads(line[: close + 1]) == whole:
            before = line[:close].rstrip()
            if before.endswith("["):
                glue = ""
            elif before.endswith(","):
                glue = " "
            else:
                glue = ", "
            return f"{before}{glue}{item}{line[close:]}"
    raise TomlEditError(f"cannot find the end of the array in {line.strip()!r}")


def _append_multiline(lines: list[str], index: int, end: int, item: str) -> None:
    """Insert a new item line before the line holding the array's closing `]`."""
    close = next((j for j in range(index + 1, end) if lines[j].strip().startswith("]")), None)
    if close is None:
        raise TomlEditError(f"cannot find the closing ] of the array on line {index + 1}")
    items = [
        j
        for j in range(index + 1, close)
        if lines[j].strip() and not lines[j].strip().startswith("#")
    ]
    indent = "    "
    if items:
        last = lines[items[-1]]
        indent = last[: len(last) - len(last.lstrip())]
        code, hash_, comment = last.rstrip("\n").partition("#")
        if not code.rstrip().endswith(","):
            lines[items[-1]] = f"{code.rstrip()},{' ' if hash_ else ''}{hash_}{comment}\n"
    lines.insert(close, f"{indent}{item},\n")


def _parses(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


def _table(doc: dict[str, Any], table: str, *, create: bool = False) -> dict[str, Any]:
    node = doc
    for part in _normal_header(table).split("."):
        node = node.setdefault(part, {}) if create else node[part]
    return node


def _verified(old: str, new: str, change: Callable[[dict[str, Any]], None], what: str) -> str:
    """Return `new` only if it parses to exactly the old document with `change` applied."""
    expected = copy.deepcopy(tomllib.loads(old))
    change(expected)
    try:
        actual = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        raise TomlEditError(
            f"editing {what} as text broke the TOML ({exc}); edit it by hand"
        ) from exc
    if actual != expected:
        raise TomlEditError(f"editing {what} as text changed more than intended; edit it by hand")
    return new
