"""Writing task states to Redis as Celery does, with a stored SUCCESS that nothing replaces.

Every write is what Celery's ``RedisBackend._set`` sends: the meta key set with the expiry
(``SET key value EX n``, which is ``SETEX``; ``PX`` for a fraction of a second; a plain ``SET``
without expiry), then ``PUBLISH key value``, so a waiting Celery or taskq client wakes up.

Celery keeps a SUCCESS by reading the key first and skipping the write, two steps another
worker can slip between. Here the check and the write are one Lua script, so a late STARTED
or FAILURE from a task that ran twice cannot replace a SUCCESS, even racing it. The script
must know the status of the value already stored:

- it only needs to look when ``SUCCESS`` appears in the stored bytes at all: JSON, msgpack,
  pickle and YAML write the status text verbatim, so a value without it is not a SUCCESS.
  That is the usual case (PENDING, STARTED or no value before the SUCCESS), and costs one
  substring search;
- otherwise a JSON or msgpack value is decoded in Lua (``cjson``, ``cmsgpack``) and its status
  read;
- a value the script cannot read (pickle, YAML, a signed or encrypted serializer, a JSON
  document Lua fails on) is handed back to the caller, which decodes it here and, unless it is
  a SUCCESS, writes again on the condition that the value is still the one it read (compared
  by SHA-1): one more round trip, only when a value with "SUCCESS" in it, or of an opaque
  format, is already there.

A batch (``store_many``) is one script call: entries are written in order, so a batch holding
STARTED then SUCCESS of one task ends with the SUCCESS. The script stops at the first value it
hands back; the caller settles it and sends the rest.

The script runs on a :class:`~taskq_redis.connection.DirectConnection`: a worker stores a state
or two per task, and redis-py's per-command path costs more client CPU than the round trip.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis

from .commands import commands
from .direct import DirectConnection
from .scripts import Script

__all__ = ["ResultWriter", "expiry_arguments", "status_reader_for"]

#: How the script may read a stored value's status, by content type.
_READERS: dict[str, str] = {
    "application/json": "json",
    "application/x-msgpack": "msgpack",
    # The status is written verbatim, but Lua cannot decode these formats.
    "application/x-python-serialize": "verbatim",
    "application/x-yaml": "verbatim",
}
_OPAQUE = "opaque"

# KEYS: the meta keys. ARGV[1], ARGV[2]: the expiry option ("EX"/"PX") and its amount, or two
# empty strings for none. ARGV[3]: how to read a stored status (see _READERS). Then, for each
# key, its new value and the SHA-1 of the stored value the caller already found not to be a
# SUCCESS ("" when it has not looked). Returns {0} when every entry was settled, or {i, value}
# when entry i's stored value must be judged by the caller (nothing from i on was written).
STORE_LUA = """
local unit, amount, reader = ARGV[1], ARGV[2], ARGV[3]

local function stored_status(value)
    if reader == 'json' then
        return cjson.decode(value)['status']
    elseif reader == 'msgpack' then
        return cmsgpack.unpack(value)['status']
    end
    error('unreadable')
end

for i, key in ipairs(KEYS) do
    local value, checked = ARGV[2 * i + 2], ARGV[2 * i + 3]
    local current = redis.call('GET', key)
    local write = true
    if current and not (checked ~= '' and redis.sha1hex(current) == checked) then
        if reader == 'opaque' then
            return {i, current}
        end
        if string.find(current, 'SUCCESS', 1, true) then
            local ok, status = pcall(stored_status, current)
            if not ok then
                return {i, current}
            end
            write = status ~= 'SUCCESS'
        end
    end
    if write then
        if unit == '' then
            redis.call('SET', key, value)
        else
            redis.call('SET', key, value, unit, amount)
        end
        redis.call('PUBLISH', key, value)
    end
end
return {0}
"""


_STORE = Script("store results", STORE_LUA)


def status_reader_for(content_type: str) -> str:
    """How the store script reads a stored status for values of this content type."""
    return _READERS.get(content_type, _OPAQUE)


def expiry_arguments(seconds: float | None) -> tuple[str, str]:
    """``SET``'s expiry option for ``seconds``: ``EX n`` when whole, else ``PX`` milliseconds.

    ``None`` and 0 mean no expiry, as a falsy ``result_expires`` does in Celery.
    """
    if not seconds:
        return "", ""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"expires must be a number of seconds >= 0, got {seconds!r}")
    if seconds == int(seconds):
        return "EX", str(int(seconds))
    return "PX", str(max(1, math.ceil(seconds * 1000)))


class ResultWriter:
    """Runs the store script on ``direct`` (``client`` loads it when the server lacks it);
    ``is_success`` judges values the script hands back."""

    def __init__(
        self,
        client: redis.Redis,
        direct: DirectConnection,
        content_type: str,
        is_success: Callable[[bytes], bool],
    ) -> None:
        self._client = commands(client)
        self._direct = direct  # the backend's: it closes it
        self._reader = status_reader_for(content_type)
        self._is_success = is_success

    def write(self, entries: Sequence[tuple[str, bytes]], expires: float | None) -> None:
        """Store ``(key, value)`` pairs in order, each unless its key holds a SUCCESS."""
        unit, amount = expiry_arguments(expires)
        pending = list(entries)
        checked: dict[int, str] = {}  # position in pending -> SHA-1 of a value judged not SUCCESS
        while pending:
            args: list[Any] = [unit, amount, self._reader]
            for position, (_, value) in enumerate(pending):
                args += (value, checked.get(position, ""))
            keys = [key for key, _ in pending]
            reply = cast("list[Any]", _STORE.run_direct(self._direct, self._client, keys, args))
            settled = int(reply[0])
            if settled == 0:
                return
            # Entry `settled` (1-based) holds a value the script could not judge.
            stored = cast(bytes, reply[1])
            position = settled - 1
            if self._is_success(stored):
                del pending[: position + 1]  # the SUCCESS stays; go on after it
                checked = {}
            else:
                del pending[:position]
                checked = {0: hashlib.sha1(stored).hexdigest()}
