"""Chord bookkeeping rules both built-in backends follow (see ``ResultBackend.chord_part_done``).

A chord completes when its size is known and that many *distinct* header tasks have reported;
a task reported twice (its message was delivered again) counts once and keeps its first
result. Parts may report before :meth:`set_chord_size`: they are counted, and the chord
completes on the part that finds both the size and enough parts. Celery sets the size before it
sends the last header task, so the part that completes a chord always comes after the size; a
size set only after every part reported completes nothing, since ``set_chord_size`` has no
caller to hand the results to.

The part that completes the chord *claims* it for a lease and gets every part's meta, by
``group_index`` (parts without an index last, in the order they reported); the chord is done
when the claimant reports ``chord_body_sent``. Until then a report that finds the chord
complete gets the parts again when the claim expired or the report is the claimant's own task
again. A done chord hands out nothing; setting its size again starts a new run.

Chord records expire, but never sooner than a day after their last report
(:func:`chord_expiry`), so a short ``result_expires`` cannot drop a chord whose header tasks
run longer than that (Redis keeps the same rule).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

__all__ = ["check_size", "check_lease", "in_group_order", "chord_expiry", "MIN_CHORD_EXPIRES"]

_T = TypeVar("_T")

#: The shortest time a chord record lives after its last report, whatever ``result_expires``.
MIN_CHORD_EXPIRES = 86400.0


def check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"a chord size must be a whole number >= 0, got {size!r}")
    return size


def check_lease(lease: object) -> float:
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not lease > 0:
        raise ValueError(f"a chord claim lease must be a number of seconds > 0, got {lease!r}")
    if math.isinf(lease):
        raise ValueError("a chord claim lease must be finite")
    return float(lease)


def chord_expiry(result_expires: float | None) -> float | None:
    """Seconds a chord lives after a report: ``None`` (forever) when results never expire."""
    if result_expires is None:
        return None
    return max(MIN_CHORD_EXPIRES, float(result_expires))


def in_group_order(parts: Iterable[tuple[int | None, _T]]) -> list[_T]:
    """The values of ``(group_index, value)`` pairs, given in report order, by group index."""
    ordered = sorted(
        enumerate(parts),
        key=lambda item: (item[1][0] is None, item[1][0] or 0, item[0]),
    )
    return [value for _, (_, value) in ordered]
