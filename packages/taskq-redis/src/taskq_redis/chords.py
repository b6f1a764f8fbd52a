"""Chord bookkeeping in Redis, kept exactly as Celery 5.7.0's Redis backend keeps it.

A chord's header tasks may finish on taskq and Celery workers alike, so both must count in the
same keys, the same way (``celery/backends/redis.py``, ``CHORD_PART_RETURN_LUA``). For a group
id ``gid``, every key is ``celery-taskset-meta-<gid><suffix>``:

- ``.j``: the parts' results. A sorted set scored by ``group_index`` when
  ``result_chord_ordered`` is true (Celery's default; a part without an index scores
  ``+inf``), else a list in arrival order. Each member is ``[1, task_id, state, result]``
  encoded with the result serializer (an exception as its stored dict).
- ``.d``: the parts already counted, as ``"<task_id>:<group_index>"``, so a header task
  delivered twice counts once and keeps its first result.
- ``.s``: the chord size, written by ``set_chord_size`` (which also deletes ``.c``: a chord
  applied again under its frozen group id is a new run).
- ``.t``: how many parts ``Task.add_to_chord`` added while the chord ran (taskq never adds).
- ``.c``: the claim. The part that finds ``count(.j) == int(.s) + int(.t)`` takes it, so one
  worker, taskq's or Celery's, fires the body. A Celery worker claims with a random token
  (``SET NX EX``, 10 s, extended while it publishes), then cleans up and sets ``"done"`` for
  300 s; a part that finds ``"done"`` changes nothing.

taskq's part report is one script that records the part, counts, and for the part that
completes the chord claims ``.c`` with its *task id* for a lease (``PX``) and returns every
part; nothing is deleted yet. The worker publishes the body, then ``chord_body_sent`` deletes
``.j .t .s .d .m`` and sets ``.c`` to ``"done"`` for 300 s, as Celery's cleanup does. A worker
that dies in between leaves the chord complete but not done: a later report of one of its
parts gets the parts again when the claim has expired, and at once when it is the claiming
task's own report (its message delivered again after its worker died), so the body is sent
rather than lost. A claim held by another id (a live taskq claimant, or a Celery token) is
respected.

``.j`` holds only what Celery's members hold: task id, state and result. When a part's meta
carries more (a date, a traceback, extended fields), taskq also keeps the whole encoded meta in
``.m`` (a hash by the ``.d`` member; a taskq-only key, which Celery ignores and which expires
with the rest), so ``chord_part_done`` returns every meta as reported. A worker's own parts
carry nothing more, so in practice ``.m`` stays empty.

Expiry, as Celery sets it: every part report gives ``.j .t .s .d`` (and ``.m``) the chord
expiry again and the saved group (``celery-taskset-meta-<gid>``, when a complex header saved
it) the longer of the chord and result expiries; ``.s`` gets the chord expiry when it is set.
A running chord therefore expires only after the chord expiry passes with no part reported.
Celery's chord expiry is ``result_chord_expires``, defaulting to ``result_expires``; taskq's
defaults to the longer of ``result_expires`` and one day (the option ``result_chord_expires``
in ``result_backend_transport_options`` sets it), so a short ``result_expires`` cannot drop a
chord whose header tasks run longer than that. With ``result_expires`` off (None), chord keys
do not expire, as in Celery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import redis

from taskq.backends.chords import check_lease, check_size
from taskq.backends.codec import ResultCodec
from taskq.contracts import ChordPart
from taskq_protocol import MalformedMessage, ResultMeta
from taskq_redis.backend_keys import ResultKeys

__all__ = ["ChordCounter", "chord_expiry", "DONE_EXPIRES", "DEFAULT_CHORD_EXPIRES"]

#: How long ``.c`` stays ``"done"`` after a chord fired (Celery's ``max(claim * 2, 300)``).
DONE_EXPIRES = 300
#: The shortest chord expiry taskq uses unless ``result_chord_expires`` says otherwise.
DEFAULT_CHORD_EXPIRES = 86400
#: Every key of a chord, in the order the script takes them.
_SUFFIXES = (".j", ".t", ".s", ".d", "", ".c", ".m")

# KEYS: .j .t .s .d <group> .c .m. ARGV: task id, encoded member, "1" for a sorted set,
# group index (or "+inf"), chord expiry (0: none), group expiry (0: none), claim lease in
# milliseconds, the encoded meta when it says more than the member ("" otherwise). Returns
# false, or for the part that claims the chord {members (with scores, for a sorted set), .m as
# a flat list}.
CHORD_PART_LUA = """
local jkey, tkey, skey, dkey, gkey, ckey, mkey = unpack(KEYS)
local tid, member, ordered, score = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local expires, group_expires = tonumber(ARGV[5]), tonumber(ARGV[6])
local lease_ms, meta = tonumber(ARGV[7]), ARGV[8]

local claim = redis.call('GET', ckey)
if claim == 'done' then
    return false
end
local mark = tid .. ':' .. score
if redis.call('SISMEMBER', dkey, mark) == 0 then
    if ordered then
        redis.call('ZADD', jkey, score, member)
    else
        redis.call('RPUSH', jkey, member)
    end
    redis.call('SADD', dkey, mark)
    if meta ~= '' then
        redis.call('HSET', mkey, mark, meta)
    end
end
local count
if ordered then
    count = redis.call('ZCARD', jkey)
else
    count = redis.call('LLEN', jkey)
end
if expires > 0 then
    for _, key in ipairs({jkey, tkey, skey, dkey, mkey}) do
        redis.call('EXPIRE', key, expires)
    end
    if group_expires > 0 then
        redis.call('EXPIRE', gkey, group_expires)
    end
end

local size = redis.call('GET', skey)
if not size or count ~= tonumber(size) + tonumber(redis.call('GET', tkey) or 0) then
    return false
end
if claim and claim ~= tid then
    return false  -- claimed by a live claimant (taskq's task id, or a Celery worker's token)
end
redis.call('SET', ckey, tid, 'PX', lease_ms)
local parts
if ordered then
    parts = redis.call('ZRANGE', jkey, 0, -1, 'WITHSCORES')
else
    parts = redis.call('LRANGE', jkey, 0, -1)
end
return {parts, redis.call('HGETALL', mkey)}
"""

# KEYS: .j .t .s .d .m .c. ARGV: how long "done" stays. Celery's cleanup, without its token
# check: whoever sent the body says so.
CHORD_DONE_LUA = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[6], 'done', 'EX', tonumber(ARGV[1]))
return 1
"""


def chord_expiry(result_expires: float | None, configured: float | None) -> int:
    """The chord keys' expiry in whole seconds; 0 for none (see the module docstring)."""
    if configured is not None:
        return max(1, math.ceil(configured))
    if result_expires is None:
        return 0
    return max(DEFAULT_CHORD_EXPIRES, math.ceil(result_expires))


class ChordCounter:
    """Counts chord parts for one backend (keys, codec, ordering and expiry settings)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: ResultKeys,
        codec: ResultCodec,
        *,
        ordered: bool,
        expires: int,
        group_expires: int,
    ) -> None:
        self._redis: Any = client  # redis-py's pipeline is loosely typed
        self._script = client.register_script(CHORD_PART_LUA)
        self._done_script = client.register_script(CHORD_DONE_LUA)
        self._keys = keys
        self._codec = codec
        self.ordered = ordered
        self.expires = expires
        self.group_expires = group_expires

    def set_size(self, group_id: str, size: int) -> None:
        check_size(size)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.group(group_id, ".c"))
        pipe.set(self._keys.group(group_id, ".s"), size, ex=self.expires or None)
        pipe.execute()

    def part_done(self, part: ChordPart, lease: float) -> list[ResultMeta] | None:
        lease_ms = max(1, math.ceil(check_lease(lease) * 1000))
        meta = part.meta
        codec = self._codec
        member = codec.encode([1, part.task_id, meta.status, meta.result])
        plain = ResultMeta(part.task_id, meta.status, meta.result, group_id=part.group_id)
        full = b"" if meta == plain else codec.encode_meta(meta)
        score = "+inf" if part.group_index is None else str(int(part.group_index))
        reply = self._script(
            keys=[self._keys.group(part.group_id, suffix) for suffix in _SUFFIXES],
            args=[
                part.task_id,
                member,
                "1" if self.ordered else "0",
                score,
                self.expires,
                self.group_expires,
                lease_ms,
                full,
            ],
        )
        if not reply:
            return None
        parts, metas = cast("list[list[bytes]]", reply)
        return self._decode(part.group_id, parts, metas)

    def body_sent(self, group_id: str) -> None:
        keys = [
            self._keys.group(group_id, suffix) for suffix in (".j", ".t", ".s", ".d", ".m", ".c")
        ]
        self._done_script(keys=keys, args=[DONE_EXPIRES])

    def _decode(self, group_id: str, parts: list[bytes], metas: list[bytes]) -> list[ResultMeta]:
        full: dict[str, bytes] = {metas[i].decode(): metas[i + 1] for i in range(0, len(metas), 2)}
        full_by_task = {mark.rpartition(":")[0]: data for mark, data in full.items()}
        if self.ordered:
            members = [(parts[i], _score_text(parts[i + 1])) for i in range(0, len(parts), 2)]
        else:
            members = [(data, None) for data in parts]
        decoded: list[ResultMeta] = []
        for data, score in members:
            task_id, status, result = _unpack_member(self._codec.decode(data))
            stored = full_by_task.get(task_id) if score is None else full.get(f"{task_id}:{score}")
            if stored is not None:
                decoded.append(self._codec.decode_meta(stored, task_id))
            else:
                decoded.append(ResultMeta(task_id, status, result, group_id=group_id))
        return decoded


def _score_text(score: bytes) -> str:
    """A sorted-set score as the script wrote it into the ``.d`` member (``3``, ``+inf``)."""
    text = score.decode()
    return "+inf" if text in ("inf", "+inf") else text


def _unpack_member(value: Any) -> tuple[str, str, Any]:
    """``(task_id, state, result)`` of a ``.j`` member (``[1, task_id, state, result]``)."""
    if not isinstance(value, (list, tuple)) or len(cast("Sequence[Any]", value)) != 4:
        raise MalformedMessage("chord.part", f"expected [1, task_id, state, result], got {value!r}")
    _, task_id, status, result = cast("Sequence[Any]", value)
    return str(task_id), str(status), result
