"""The Redis database the benchmark owns: flushed before each system's round and at the end.

Flushing a database someone else uses would destroy their data, so the benchmark only flushes
one that is empty or that it marked as its own (a key it writes after every flush). Anything
else is refused with a message saying how to pick another database.
"""

from __future__ import annotations

import redis

OWNER_KEY = "taskq-bench:owner"


class ForeignDatabase(RuntimeError):
    pass


class ScratchDatabase:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url)

    def claim(self) -> None:
        """Check the database is empty or ours, then flush it."""
        size = int(self.client.dbsize())  # pyright: ignore[reportArgumentType]
        if size and not self.client.exists(OWNER_KEY):
            raise ForeignDatabase(
                f"{self.url} holds {size:,} keys this benchmark did not write, and it flushes "
                "its database: pass --url with an empty database (e.g. redis://host:6379/15)"
            )
        self.flush()

    def flush(self) -> None:
        self.client.flushdb()
        self.client.set(OWNER_KEY, "tools/bench redis")

    def release(self) -> None:
        """The final flush: nothing is left behind, not even the mark."""
        self.client.flushdb()

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])  # pyright: ignore[reportIndexIssue,reportArgumentType]

    def close(self) -> None:
        self.client.close()
