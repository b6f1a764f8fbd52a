"""Google API errors as taskq's TransportError, so callers know they may retry."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from google.api_core import exceptions as api_exceptions
from google.api_core.exceptions import GoogleAPIError

from taskq.contracts import TransportError

__all__ = ["translated", "NotFound", "AlreadyExists"]

NotFound = api_exceptions.NotFound
AlreadyExists = api_exceptions.AlreadyExists


@contextlib.contextmanager
def translated(what: str) -> Generator[None, None, None]:
    """Run a Pub/Sub call; a Google API error (gRPC failure, timeout) leaves as TransportError."""
    try:
        yield
    except (NotFound, AlreadyExists):
        raise  # callers decide what a missing or existing entity means
    except (GoogleAPIError, TimeoutError) as exc:
        raise TransportError(f"Pub/Sub {what} failed: {exc}") from exc
