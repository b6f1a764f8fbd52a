"""Random (version 4) UUIDs as text, the form task ids and delivery tags take on the wire.

``str(uuid.uuid4())`` costs a ``getrandom`` call, a ``UUID`` object and its formatting: a few
microseconds, paid twice per message (the task id and kombu's delivery tag). Here one call reads
the random bytes for :data:`BATCH` ids at once and the ids are cut from its hex digits, with the
version and variant bits set as RFC 4122 asks. The ids are as random as ``uuid4``'s (the same
``os.urandom`` source); the batch is dropped in a forked child, so parent and child never hand
out the same ids.
"""

from __future__ import annotations

import os

__all__ = ["BATCH", "uuid4_text"]

#: Ids made per ``os.urandom`` call.
BATCH = 256

# The variant digit (the 17th hex digit) keeps its low two bits and gets "10" on top: 8, 9, a, b.
_VARIANT = "89ab89ab89ab89ab"

# Made ids not handed out yet. list.pop and list.extend are atomic under the GIL, so threads
# share it without a lock (two threads refilling at once only make more ids).
_ready: list[str] = []


def _refill() -> None:
    digits = os.urandom(16 * BATCH).hex()
    variant = _VARIANT
    _ready.extend(
        f"{digits[i : i + 8]}-{digits[i + 8 : i + 12]}-4{digits[i + 13 : i + 16]}-"
        f"{variant[int(digits[i + 16], 16)]}{digits[i + 17 : i + 20]}-{digits[i + 20 : i + 32]}"
        for i in range(0, 32 * BATCH, 32)
    )


def uuid4_text() -> str:
    """A new random UUID in its 36-character text form, as ``str(uuid.uuid4())`` gives."""
    try:
        return _ready.pop()
    except IndexError:
        _refill()
        return _ready.pop()


os.register_at_fork(after_in_child=_ready.clear)
