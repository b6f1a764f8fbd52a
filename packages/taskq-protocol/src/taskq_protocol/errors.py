"""The errors this package raises for input that does not follow the protocol.

Every error names the field that is wrong and says why, so a dead-lettered message carries a
reason a person can act on. None of them is a bare ``KeyError`` or ``TypeError``.
"""

from __future__ import annotations

__all__ = ["ProtocolError", "DecodeError", "MalformedMessage", "UnsafeException"]


class ProtocolError(ValueError):
    """Input that does not follow Celery's message protocol.

    ``field`` is a dotted path to the offending part (``headers.timelimit``, ``body[2].chain``),
    ``reason`` says what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[str, str]]:
        return (type(self), (self.field, self.reason))


class DecodeError(ProtocolError):
    """Bytes that cannot be read at all: bad JSON, bad base64, bad UTF-8, an unknown marker."""


class MalformedMessage(ProtocolError):
    """A readable document whose structure is not a task message, envelope or result meta."""


class UnsafeException(ProtocolError):
    """Stored exception data that names something other than an exception class.

    Decoding a result must never call an arbitrary callable: a result store is not trusted code.
    """
