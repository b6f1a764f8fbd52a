# pyright: strict
"""One line for each failure: what went wrong and, where a setting or URL is involved, which.

Broker and backend URLs are shown with their passwords masked, also where a transport's own
message quotes the URL whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskq_cli.errors import CommandError, mask_url

if TYPE_CHECKING:
    from taskq import TaskQ

__all__ = ["explain", "TRACEBACK_HINT"]

TRACEBACK_HINT = "run with --debug or TASKQ_TRACEBACK=1 for the traceback"


def explain(exc: Exception, app: TaskQ | None, *, traceback_shown: bool) -> str:
    """The message for ``Error: ...``. Where a traceback would help and was not printed, the
    message ends by saying how to get it."""
    from taskq.contracts import BackendError, TransportError
    from taskq.exceptions import ImproperlyConfigured, TaskQError

    hint = not traceback_shown
    if isinstance(exc, CommandError):
        message = str(exc)
        hint = hint and exc.__cause__ is not None
    elif isinstance(exc, TransportError) and app is not None:
        message = _failed("cannot use the broker", app.broker_url, exc)
    elif isinstance(exc, BackendError) and app is not None:
        message = _failed("cannot use the result backend", app.backend_url or "", exc)
    elif isinstance(exc, ImproperlyConfigured):
        message, hint = f"bad configuration: {exc}", False
    elif isinstance(exc, TaskQError):
        # NotRegistered and QueueNotFound are KeyErrors, whose str() adds quotes.
        message = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
        hint = False
    else:
        message = f"{type(exc).__name__}: {exc}"
    if app is not None:
        message = _masked(message, app)
    return f"{message} ({TRACEBACK_HINT})" if hint else message


def _failed(what: str, url: str, exc: Exception) -> str:
    """``<what> at <url>: <reason>``, leaving out the URL where the reason already quotes it."""
    reason = str(exc)
    return f"{what}: {reason}" if url in reason else f"{what} at {url}: {reason}"


def _masked(message: str, app: TaskQ) -> str:
    for url in (app.conf.broker_url, app.conf.result_backend):
        if isinstance(url, str) and url:
            message = message.replace(url, mask_url(url))
    return message
