"""Broker and backend URLs as they may be shown to people: with the password masked."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["mask_url"]


def mask_url(url: str) -> str:
    """``redis://:secret@host:6379/0`` → ``redis://:****@host:6379/0``, for banners and errors.

    Several URLs joined by ``;`` (Sentinel, failover lists) are masked one by one. Anything
    that does not parse as a URL is shown as it is: it has no password part to hide.
    """
    return ";".join(_mask_one(part) for part in url.split(";"))


def _mask_one(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    credentials, _, host = parts.netloc.rpartition("@")
    user = credentials.partition(":")[0]
    return parts._replace(netloc=f"{user}:****@{host}").geturl()
