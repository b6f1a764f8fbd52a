"""One reader for boolean options, so every package accepts the same spellings.

A boolean can come from a settings mapping (``broker_transport_options``, ``broker_use_ssl``)
as a Python value, or from a URL's query string as text (``?ssl=true``). Like Celery and
kombu, taskq takes both; every transport and backend reads them here, so ``on`` or ``0`` means
the same to each of them, in a mapping or in a URL. Whether an option may be absent, and what
that means, stays with the caller."""

from __future__ import annotations

from taskq.exceptions import ImproperlyConfigured

__all__ = ["read_bool"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def read_bool(value: object, *, setting: str, name: str) -> bool:
    """``value`` of the option ``name`` given in ``setting``, as a boolean.

    Accepted: ``True`` and ``False``; the ints ``1`` and ``0``; and, stripped and in any case,
    the text ``true``, ``1``, ``yes``, ``on`` or ``false``, ``0``, ``no``, ``off``. Anything
    else (``None`` included) raises :class:`~taskq.exceptions.ImproperlyConfigured` naming
    ``setting`` and ``name``.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ImproperlyConfigured(setting, f"{name} must be true or false, got {value!r}")
