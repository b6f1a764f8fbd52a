# pyright: strict
"""Drawing a workflow tree (:mod:`taskq_cli.result_tree`) as text lines, or as JSON data.

A task is one line, ``name id STATE detail``: the name when the store has it, the full id (to
copy into another command), the state (colored on a terminal), and for a finished task its
return value's ``repr`` cut to one short line, or its exception. Chains, groups and chords are
a heading line over their steps or members::

    chain
    ├── proj.add 1f0c... SUCCESS 3
    └── chord 84ff... (2 in header)
        ├── proj.add 9cdb... SUCCESS 2
        ├── proj.add 2000... FAILURE ValueError: boom
        └── body: proj.tsum f0b5... FAILURE taskq.exceptions.ChordError: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskq_cli.result_tree import ChainNode, GroupNode, Hidden, Node, TaskNode
from taskq_protocol import states

__all__ = ["Glyphs", "UNICODE", "ASCII", "render_text", "to_json", "RESULT_WIDTH", "ERROR_WIDTH"]

#: Longest ``repr`` of a result on a task's line, in characters.
RESULT_WIDTH = 60
#: Longest exception line: the message is what the reader came for, so it gets more room.
ERROR_WIDTH = 120

_COLORS = {
    states.SUCCESS: "32",  # green
    states.FAILURE: "31",  # red
    states.REVOKED: "35",  # magenta
    states.REJECTED: "35",
    states.RETRY: "33",  # yellow
    states.STARTED: "36",  # cyan
    states.RECEIVED: "36",
}
_DIM = "2"


@dataclass(frozen=True, slots=True)
class Glyphs:
    """The branches of the tree: box drawing where the output can encode it, else ASCII."""

    branch: str
    last: str
    pipe: str
    space: str
    ellipsis: str


UNICODE = Glyphs("├── ", "└── ", "│   ", "    ", "…")
ASCII = Glyphs("|-- ", "`-- ", "|   ", "    ", "...")


@dataclass(slots=True)
class _Line:
    text: str
    below: list[_Line] = field(default_factory=list["_Line"])


def render_text(node: Node, *, color: bool = False, glyphs: Glyphs = UNICODE) -> str:
    """The tree as lines of text (no final newline)."""
    out: list[str] = []
    root = _Drawing(color, glyphs).line(node)
    out.append(root.text)
    _draw(root.below, "", glyphs, out)
    return "\n".join(out)


def _draw(lines: list[_Line], indent: str, glyphs: Glyphs, out: list[str]) -> None:
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        out.append(f"{indent}{glyphs.last if last else glyphs.branch}{line.text}")
        _draw(line.below, indent + (glyphs.space if last else glyphs.pipe), glyphs, out)


@dataclass(frozen=True, slots=True)
class _Drawing:
    color: bool
    glyphs: Glyphs

    def line(self, node: Node, prefix: str = "") -> _Line:
        if isinstance(node, TaskNode):
            below = [self.line(child) for child in node.children]
            return _Line(prefix + self._task(node), self._with_hidden(below, node.hidden))
        if isinstance(node, ChainNode):
            below = [self.line(step) for step in node.steps]
            return _Line(f"{prefix}chain", self._with_hidden(below, node.hidden))
        if isinstance(node, GroupNode):
            below = [self.line(member) for member in node.members]
            heading = f"{prefix}group {node.id} ({_members(node)})"
            return _Line(heading, self._with_hidden(below, node.hidden))
        header = node.header
        below = [self.line(member) for member in header.members]
        below = self._with_hidden(below, header.hidden)
        below.append(self.line(node.body, "body: "))
        return _Line(f"{prefix}chord {node.id} ({_header(header)})", below)

    def _task(self, node: TaskNode) -> str:
        parts = [node.name, node.id, self._paint(node.state, _COLORS.get(node.state))]
        if node.error is not None:
            parts.append(self._cut(node.error, ERROR_WIDTH))
        elif node.state == states.SUCCESS or node.result is not None:
            parts.append(self._cut(_safe_repr(node.result), RESULT_WIDTH))
        return " ".join(part for part in parts if part)

    def _with_hidden(self, lines: list[_Line], hidden: Hidden | None) -> list[_Line]:
        if hidden is not None:
            text = f"... {hidden.count} more ({hidden.finished} finished)"
            lines.append(_Line(self._paint(text, _DIM)))
        return lines

    def _paint(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and code else text

    def _cut(self, text: str, width: int) -> str:
        """One line of at most ``width`` characters."""
        flat = " ".join(text.split())
        if len(flat) <= width:
            return flat
        return flat[: width - len(self.glyphs.ellipsis)] + self.glyphs.ellipsis


def _members(group: GroupNode) -> str:
    if group.size is None:
        return f"not saved; {_plural(_found(group), 'member')} found"
    return _plural(group.size, "member")


def _header(group: GroupNode) -> str:
    if group.size is None:
        return f"header not saved; {_found(group)} found"
    return f"{group.size} in header"


def _found(group: GroupNode) -> int:
    return len(group.members) + (group.hidden.count if group.hidden else 0)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a stored object whose __repr__ fails must not end the view
        return f"<unprintable {type(value).__name__}: {exc!r}>"


def to_json(node: Node) -> dict[str, Any]:
    """The tree as JSON-ready data (results as stored; the caller's encoder handles the rest).

    ``{"type": "task", "id", "name", "state", "result", "error", "children", "more"}``,
    ``{"type": "chain", "steps", "more"}``, ``{"type": "group", "id", "size", "members",
    "more"}`` and ``{"type": "chord", "id", "header": <group>, "body"}``; ``more`` is ``null``
    or ``{"count", "finished"}`` for what the limits left out.
    """
    if isinstance(node, TaskNode):
        return {
            "type": "task",
            "id": node.id,
            "name": node.name,
            "state": node.state,
            "result": node.result,
            "error": node.error,
            "children": [to_json(child) for child in node.children],
            "more": _hidden_json(node.hidden),
        }
    if isinstance(node, ChainNode):
        return {
            "type": "chain",
            "steps": [to_json(step) for step in node.steps],
            "more": _hidden_json(node.hidden),
        }
    if isinstance(node, GroupNode):
        return {
            "type": "group",
            "id": node.id,
            "size": node.size,
            "members": [to_json(member) for member in node.members],
            "more": _hidden_json(node.hidden),
        }
    return {
        "type": "chord",
        "id": node.id,
        "header": to_json(node.header),
        "body": to_json(node.body),
    }


def _hidden_json(hidden: Hidden | None) -> dict[str, int] | None:
    return None if hidden is None else {"count": hidden.count, "finished": hidden.finished}
