"""Rate limits as Celery writes them: ``"10/s"``, ``"100/m"``, ``"1000/h"``, or tasks per second."""

from __future__ import annotations

__all__ = ["parse_rate"]

_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(rate: object) -> float | None:
    """Tasks per second, or None for no limit (``None``, ``0``, ``""``).

    Raises ValueError with the accepted forms for anything else.
    """
    if rate is None or (isinstance(rate, (str, int, float)) and rate in ("", 0)):
        return None
    if isinstance(rate, bool):
        raise ValueError(f"expected a rate like '10/s', '100/m' or a number, got {rate!r}")
    if isinstance(rate, (int, float)):
        if rate < 0:
            raise ValueError(f"a rate cannot be negative, got {rate!r}")
        return float(rate)
    if isinstance(rate, str):
        amount, _, unit = rate.strip().partition("/")
        try:
            count = float(amount)
        except ValueError:
            count = -1.0
        per = _PER.get(unit.strip() or "s")
        if count >= 0 and per is not None:
            return None if count == 0 else count / per
    raise ValueError(f"expected a rate like '10/s', '100/m', '1000/h' or a number, got {rate!r}")
