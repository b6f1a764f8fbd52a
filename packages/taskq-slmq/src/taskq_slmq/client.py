# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
"""A typed face on the ``softlayer_messaging`` client, for the calls the transport makes.

The client library is untyped and raises its own errors; here every failure to reach the
service, or a 5xx, becomes :class:`~taskq.contracts.TransportError`, and a 404 is an answer
(``None``/``False``), because a queue or message that is gone is a normal outcome.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Generator, Mapping
from typing import Any, cast

import requests
import softlayer_messaging  # pyright: ignore[reportMissingTypeStubs]
from softlayer_messaging.errors import ResponseError  # pyright: ignore[reportMissingTypeStubs]

from taskq.contracts import TransportError

__all__ = ["SlmqClient", "Popped"]


class _Missing(Exception):
    pass


@contextlib.contextmanager
def _translated(what: str) -> Generator[None, None, None]:
    try:
        yield
    except ResponseError as exc:
        if str(exc).startswith("404"):
            raise _Missing(what) from exc
        raise TransportError(f"SoftLayer Message Queue {what} failed: {exc}") from exc
    except (requests.RequestException, OSError) as exc:
        raise TransportError(f"SoftLayer Message Queue {what} failed: {exc}") from exc


class Popped:
    """One message as ``GET messages?batch=N`` returns it."""

    __slots__ = ("body", "fields", "id")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.id = str(raw["id"])
        self.body = str(raw.get("body") or "")
        self.fields: dict[str, Any] = dict(cast("Mapping[str, Any]", raw.get("fields") or {}))


class SlmqClient:
    def __init__(self, endpoint: str, account: str, user: str, api_key: str) -> None:
        self._client: Any = softlayer_messaging.get_client(account, endpoint=endpoint)
        self._user, self._api_key = user, api_key

    def authenticate(self) -> None:
        with _translated("authentication"):
            self._client.authenticate(self._user, self._api_key)

    def queue_detail(self, name: str) -> dict[str, Any] | None:
        try:
            with _translated(f"GET queue {name}"):
                return dict(self._client.queue(name).detail())
        except _Missing:
            return None

    def queues_tagged(self, tag: str) -> list[str]:
        with _translated("GET queues"):
            found = self._client.queues(tags=[tag])
        return [str(item["name"]) for item in found.get("items", [])]

    def put_queue(self, name: str, visibility_interval: int, tags: list[str]) -> None:
        with _translated(f"PUT queue {name}"):
            self._client.create_queue(name, visibility_interval=visibility_interval, tags=tags)

    def delete_queue(self, name: str) -> bool:
        try:
            with _translated(f"DELETE queue {name}"):
                self._client.queue(name).delete(force=True)
        except _Missing:
            return False
        return True

    def push(
        self, name: str, body: str, *, fields: Mapping[str, Any] | None = None, delay: float = 0
    ) -> str | None:
        """Send one message; its id, or None when the queue does not exist."""
        extra: dict[str, Any] = {"fields": dict(fields or {})}
        if delay > 0:
            extra["visibility_delay"] = math.ceil(delay)
        try:
            with _translated(f"POST message to {name}"):
                return str(self._client.queue(name).push(body, **extra)["id"])
        except _Missing:
            return None

    def pop(self, name: str, batch: int) -> list[Popped] | None:
        try:
            with _translated(f"GET messages of {name}"):
                found = self._client.queue(name).pop(batch)
        except _Missing:
            return None
        return [Popped(item) for item in found.get("items", [])]

    def delete_message(self, name: str, message_id: str) -> bool:
        """Delete one message; False when it was already gone."""
        try:
            with _translated(f"DELETE message of {name}"):
                self._client.queue(name).message(message_id).delete()
        except _Missing:
            return False
        return True
