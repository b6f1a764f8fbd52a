"""The Lua scripts that make the transport's multi-key steps atomic, and how they are run.

Each script runs with EVALSHA; a server that does not know it (restarted, flushed with SCRIPT
FLUSH, failed over) answers NOSCRIPT, and the script is loaded again and rerun, so a transport
survives a restart without being rebuilt.

Unacknowledged deliveries are recorded exactly as kombu records them (``HSET unacked <tag>
[envelope, exchange, routing_key]`` and ``ZADD unacked_index <time> <tag>``), so kombu's
``restore_visible`` can give back what taskq took and the other way round. The recorded
exchange is ``""`` and the routing key the queue's name: kombu's restore then pushes the
message straight back onto that queue (the anonymous exchange routes by queue name), whatever
the envelope's own ``delivery_info`` says.

Delivery counts live in ``_taskq.deliveries`` by the envelope's ``delivery_tag``, and only for
messages delivered more than once: a first delivery (no ``redelivered`` flag, which kombu and
taskq set when they give a message back) writes nothing, so the common case costs nothing and
leaves nothing behind when a Celery worker acknowledges the message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from taskq_redis.commands import Commands
from taskq_redis.direct import DirectConnection

__all__ = [
    "Script",
    "FETCH",
    "PUBLISH",
    "WAKE_SOURCE",
    "ACK",
    "GIVE_BACK",
    "DEAD_LETTER",
    "REFRESH_BINDING",
    "SEND_DIRECT",
    "DELETE_QUEUE",
]


class Script:
    """A Lua script run by its SHA1, loaded again when the server has forgotten it."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(
        self, client: Commands, keys: Sequence[str], args: Sequence[str | bytes | int | float]
    ) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def run_direct(
        self,
        direct: DirectConnection,
        client: Commands,
        keys: Sequence[str],
        args: Sequence[str | bytes | int | float],
    ) -> Any:
        """The same, sent on ``direct`` (a hot path's connection); ``client`` loads it."""
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return direct.execute(*command)
        except NoScriptError:
            client.script_load(self.source)
            return direct.execute(*command)

    def post_direct(
        self,
        direct: DirectConnection,
        keys: Sequence[str],
        args: Sequence[str | bytes | int | float],
    ) -> None:
        """The same, posted on ``direct`` without waiting for the reply (it loads the script
        itself if Redis answers NOSCRIPT)."""
        direct.post("EVALSHA", self.sha, len(keys), *keys, *args, source=self.source)

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"


#: Move due delayed messages into their lists, pop up to ``limit`` messages and record each
#: as an unacked delivery.
#:
#: KEYS: unacked, unacked_index, deliveries, then one delayed set per queue (nq), then the
#: lists, priority-major (for each step, every queue in order), then one wake-up list per
#: queue, emptied when the fetch took fewer than ``limit`` (it drained every list: there is
#: nothing left to wake anyone for), then one waiting marker per queue, set for the last
#: ARGV's milliseconds when the fetch took nothing (its caller is about to block).
#: ARGV: now ("" for the server's clock: a call queued behind a blocking wait runs later than
#: it was written), limit, tag prefix, most delayed messages moved per queue, nq, number of steps
#: (ns), queue index of messages popped before the call (0: none), how many (np), the ns steps,
#: the nq queue names as JSON strings, then the np popped messages, then how long (ms) the
#: waiting markers last.
#: Returns {next due score or "", oldest unacked score or "", then per delivery: queue index,
#: tag, delivery count, message}.
FETCH = Script(
    "fetch",
    r"""
-- Scores go to Redis as the caller's text: a Lua number would lose digits.
local now = ARGV[1]
if now == '' then
  local clock = redis.call('TIME')
  now = clock[1] .. '.' .. string.format('%06d', tonumber(clock[2]))
end
local limit = tonumber(ARGV[2])
local tag_prefix = ARGV[3]
local max_moves = tonumber(ARGV[4])
local nq = tonumber(ARGV[5])
local ns = tonumber(ARGV[6])
local popped_queue = tonumber(ARGV[7])
local np = tonumber(ARGV[8])
local steps = {}
for i = 1, ns do steps[i] = tonumber(ARGV[8 + i]) end
local names_at = 8 + ns
local popped_at = names_at + nq
local lists_at = 3 + nq

-- kombu's priority(): the highest step <= the priority (the last step when none is).
local function step_of(priority)
  local found = ns
  for i = 1, ns do
    if priority >= steps[i] then found = i end
  end
  return found
end

local next_due = ''
for q = 1, nq do
  local delayed = KEYS[3 + q]
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, max_moves)
  for _, member in ipairs(due) do
    -- "<priority>:<32 hex id>:<message>"; anything else goes to step 0 as it is.
    local list, message = KEYS[lists_at + q], member
    if string.sub(member, 2, 2) == ':' and string.sub(member, 35, 35) == ':' then
      local priority = tonumber(string.sub(member, 1, 1)) or 0
      list = KEYS[lists_at + (step_of(priority) - 1) * nq + q]
      message = string.sub(member, 36)
    end
    redis.call('LPUSH', list, message)
  end
  if #due > 0 then
    redis.call('ZREMRANGEBYRANK', delayed, 0, #due - 1)
  end
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if first[2] and (next_due == '' or tonumber(first[2]) < tonumber(next_due)) then
    next_due = first[2]
  end
end

local out = {next_due, ''}
local taken = 0
-- One HSET and one ZADD for the whole batch (in pieces under Lua's unpack limit).
local records, scores = {}, {}

local function flush(command, key, args)
  for first = 1, #args, 1000 do
    redis.call(command, key, unpack(args, first, math.min(first + 999, #args)))
  end
end

local function record(q, message)
  taken = taken + 1
  local tag = tag_prefix .. taken
  records[#records + 1] = tag
  records[#records + 1] = '[' .. message .. ',"",' .. ARGV[names_at + q] .. ']'
  scores[#scores + 1] = now
  scores[#scores + 1] = tag
  local count = 1
  -- Only a message given back carries a "redelivered" flag; skip decoding the others.
  if string.find(message, 'redelivered', 1, true) then
    local ok, envelope = pcall(cjson.decode, message)
    if ok and type(envelope) == 'table' then
      local headers, properties = envelope['headers'], envelope['properties']
      local flagged = type(headers) == 'table' and headers['redelivered'] == true
      local delivery_tag = nil
      if type(properties) == 'table' then
        local info = properties['delivery_info']
        if type(info) == 'table' and info['redelivered'] == true then flagged = true end
        if type(properties['delivery_tag']) == 'string' then
          delivery_tag = properties['delivery_tag']
        end
      end
      if flagged then
        count = 2
        if delivery_tag then
          count = redis.call('HINCRBY', KEYS[3], delivery_tag, 1)
          if count < 2 then
            count = 2
            redis.call('HSET', KEYS[3], delivery_tag, 2)
          end
        end
      end
    end
  end
  out[#out + 1] = q
  out[#out + 1] = tag
  out[#out + 1] = count
  out[#out + 1] = message
end

for i = 1, np do
  record(popped_queue, ARGV[popped_at + i])
end
for l = 1, ns * nq do
  if taken >= limit then break end
  local key = KEYS[lists_at + l]
  local q = ((l - 1) % nq) + 1
  while taken < limit do
    local message = redis.call('RPOP', key)
    if not message then break end
    record(q, message)
  end
end

if taken > 0 then
  flush('HSET', KEYS[1], records)
  flush('ZADD', KEYS[2], scores)
end
if taken < limit then
  for q = 1, nq do redis.call('DEL', KEYS[lists_at + ns * nq + q]) end
end
if taken == 0 then
  local waiting_at = lists_at + ns * nq + nq
  local ms = ARGV[popped_at + np + 1]
  for q = 1, nq do redis.call('SET', KEYS[waiting_at + q], '1', 'PX', ms) end
end

local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if oldest[2] then out[2] = oldest[2] end
return out
""",
)

#: While a taskq consumer of the queue is idle (its waiting marker is set), put a token on the
#: queue's wake-up list (one element at most, gone after a minute if nobody takes it). The
#: consumer, blocked on the wake-up lists before the queue's lists, wakes on the token and its
#: fetch script, queued behind the wait, pops and records the message in the same round trip,
#: rather than the wait popping the message outside any script. The token goes before the
#: message: Redis serves a blocked client from the first key made ready.
#: KEYS: the wake-up list, the waiting marker.
WAKE_SOURCE = r"""
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('LPUSH', KEYS[1], '1')
  redis.call('LTRIM', KEYS[1], 0, 0)
  redis.call('PEXPIRE', KEYS[1], 60000)
end
"""

#: Publish one message to a queue: the wake-up above, then LPUSH as kombu does.
#: KEYS: the wake-up list, the waiting marker, the list. ARGV: the message.
PUBLISH = Script(
    "publish",
    WAKE_SOURCE + "return redis.call('LPUSH', KEYS[3], ARGV[1])\n",
)

#: Settle deliveries for good (ack, reject without requeue).
#: KEYS: unacked, unacked_index, deliveries. ARGV: pairs of (tag, envelope delivery tag whose
#: count to forget, or ""). A tag no longer in ``unacked`` belongs to nobody now: skipped.
ACK = Script(
    "ack",
    r"""
local settled = 0
for i = 1, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    settled = settled + 1
    redis.call('ZREM', KEYS[2], ARGV[i])
    if ARGV[i + 1] ~= '' then redis.call('HDEL', KEYS[3], ARGV[i + 1]) end
  end
end
return settled
""",
)

#: Give deliveries back to their queues (restore after the visibility timeout, reject with
#: requeue, close), each only if it is still unacked and, when a score is given, unchanged
#: since it was read (an extension, or a new delivery under kombu's reused tag, wins).
#: KEYS: unacked, unacked_index, then the target lists. ARGV: groups of five: tag, expected
#: score or "", targets, message, side. Targets are list positions joined by commas (a
#: message bound to several queues goes to each); "" forgets an index entry whose hash entry
#: is gone, "-" drops an entry that cannot be restored. Side "R" puts the message at the head
#: (RPUSH: served next, as kombu restores), "L" at the tail (LPUSH, as kombu requeues).
GIVE_BACK = Script(
    "give_back",
    r"""
local moved = 0
for i = 1, #ARGV, 5 do
  local tag, targets = ARGV[i], ARGV[i + 2]
  local current = true
  if ARGV[i + 1] ~= '' then
    local score = redis.call('ZSCORE', KEYS[2], tag)
    current = score and tonumber(score) == tonumber(ARGV[i + 1])
  end
  if not current then
    -- someone else settled, extended or took it again since it was read
  elseif targets == '' then
    if redis.call('HEXISTS', KEYS[1], tag) == 0 then redis.call('ZREM', KEYS[2], tag) end
  elseif redis.call('HDEL', KEYS[1], tag) == 1 then
    redis.call('ZREM', KEYS[2], tag)
    if targets ~= '-' then
      local push = ARGV[i + 4] == 'R' and 'RPUSH' or 'LPUSH'
      for index in string.gmatch(targets, '%d+') do
        redis.call(push, KEYS[2 + tonumber(index)], ARGV[i + 3])
      end
      moved = moved + 1
    end
  end
end
return moved
""",
)

#: Move one delivery to a dead-letter list, if it is still this consumer's.
#: KEYS: unacked, unacked_index, deliveries, the dead-letter list.
#: ARGV: tag, envelope delivery tag whose count to forget (or ""), the message to put there.
DEAD_LETTER = Script(
    "dead_letter",
    r"""
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then redis.call('HDEL', KEYS[3], ARGV[2]) end
redis.call('LPUSH', KEYS[4], ARGV[3])
return 1
""",
)

#: What kombu 5.7 does for a queue declared with ``x-expires``: add the binding, and move the
#: exchange's deadline (ms, by the server's clock) to ARGV[3] ms from now unless it is later.
#: kombu's sweeper deletes a table whose deadline passed and that has no permanent members.
#: KEYS: the binding table, ``_kombu.binding_deadlines``. ARGV: member, exchange, ttl in ms.
REFRESH_BINDING = Script(
    "refresh_binding",
    r"""
redis.call('SADD', KEYS[1], ARGV[1])
local clock = redis.call('TIME')
local deadline = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], 'GT', deadline, ARGV[2])
""",
)

#: Publish through a direct exchange as kombu does (``DirectExchange.lookup`` then ``_put``):
#: LPUSH the message to every queue whose binding in the table has exactly the routing key
#: (a topic member's pattern is ignored, as kombu's direct lookup ignores it). Reading the
#: table and pushing in one step means a queue deleted meanwhile is never recreated by a late
#: message. The lists are named here (``prefix .. queue .. suffix``), as kombu names them; a
#: standalone server (or Sentinel's master) is all kombu's Redis transport supports anyway.
#: KEYS: the binding table. ARGV: separator, routing key, key prefix, list suffix of the
#: message's priority step ("" for step 0), the message. Returns how many queues got it.
SEND_DIRECT = Script(
    "send_direct",
    r"""
local sep, routing_key = ARGV[1], ARGV[2]
local sent, seen = 0, {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local first = string.find(member, sep, 1, true)
  if first and string.sub(member, 1, first - 1) == routing_key then
    local second = string.find(member, sep, first + #sep, true)
    if second then
      local queue = string.sub(member, second + #sep)
      if queue ~= '' and not seen[queue] then
        seen[queue] = true
        redis.call('LPUSH', ARGV[3] .. queue .. ARGV[4], ARGV[5])
        sent = sent + 1
      end
    end
  end
end
return sent
""",
)

#: Delete a queue as kombu's ``Channel._delete`` does, in one step: its keys, and its members
#: of the binding tables. KEYS: the keys to delete (lists, delayed set), then the tables.
#: ARGV: how many keys to delete, then one member per table, in the tables' order.
DELETE_QUEUE = Script(
    "delete_queue",
    r"""
local n = tonumber(ARGV[1])
for i = 1, n do redis.call('DEL', KEYS[i]) end
for i = n + 1, #KEYS do redis.call('SREM', KEYS[i], ARGV[i - n + 1]) end
return 1
""",
)
