"""Chord bookkeeping rules both built-in backends follow.

A chord completes when its size is known and that many *distinct* header tasks have reported;
a task reported twice (its message was delivered again) counts once and keeps its first
result. Parts may report before :meth:`set_chord_size`: they are counted, and the chord
completes on the part that finds both the size and enough parts. Celery sets the size before it
sends the last header task, so the part that completes a chord always comes after the size; a
size set only after every part reported completes nothing, since ``set_chord_size`` has no
caller to hand the results to.

The part that completes the chord gets every part's meta, by ``group_index`` (parts without an
index last, in the order they reported); everyone else, before or after, gets ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

__all__ = ["check_size", "in_group_order"]

_T = TypeVar("_T")


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"a chord size must be a whole number >= 0, got {size!r}")
    return size


def in_group_order(parts: Iterable[tuple[int | None, _T]]) -> list[_T]:
    """The values of ``(group_index, value)`` pairs, given in report order, by group index."""
    ordered = sorted(
        enumerate(parts),
        key=lambda item: (item[1][0] is None, item[1][0] or 0, item[0]),
    )
    return [value for _, (_, value) in ordered]
