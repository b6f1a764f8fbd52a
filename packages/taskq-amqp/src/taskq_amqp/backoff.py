"""Reconnect pacing: quick first retries, then at most a couple of seconds apart."""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    def __init__(self, first: float = 0.1, most: float = 2.0) -> None:
        self._first = first
        self._most = most
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._most)
        return delay

    def reset(self) -> None:
        self._next = self._first
