"""TLS settings as Celery and kombu spell them, read the same way by every transport and backend."""

from __future__ import annotations

import ssl

from taskq.exceptions import ImproperlyConfigured

__all__ = ["cert_reqs"]

_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "cert_required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "cert_optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
    "cert_none": ssl.CERT_NONE,
}


def cert_reqs(value: object, setting: str, key: str) -> ssl.VerifyMode:
    """``value`` of the TLS option ``key`` (``cert_reqs``, ``ssl_cert_reqs``) given in
    ``setting``, as a verify mode: an :class:`ssl.VerifyMode` or its number, or its name in
    any case, with or without kombu's ``CERT_`` prefix."""
    if isinstance(value, ssl.VerifyMode):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return ssl.VerifyMode(value)
        except ValueError:
            pass
    if isinstance(value, str) and value.strip().lower() in _CERT_REQS:
        return _CERT_REQS[value.strip().lower()]
    raise ImproperlyConfigured(
        setting, f"{key} must be required, optional or none (or ssl.CERT_*), got {value!r}"
    )
