"""Redis's Lua scripts (each check-then-write of the store as one atomic step on the server),
and the error mapping every Redis call shares."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from bot.errors import StoreUnavailable
from bot.state.base import (
    QUOTA_WINDOW,
    CodeTaken,
    FirstAnswer,
    Fresh,
    Known,
    LinkRecord,
    OverQuota,
    PushClaimed,
    Remembered,
    Replayed,
)

P = ParamSpec("P")
T = TypeVar("T")

PREFIX = "bot:"
PENDING, SUCCESS, TEXT, QUOTA = "P", "S", "T", "Q"
REPLAYED, CODE_TAKEN = "R", "C"

CLAIM_MESSAGE = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], 'P', 'PX', ARGV[1])
return false
"""
# From KEYS[k+1]: link hash, all links, the follower's links, the file's links; from ARGV[a+1]:
# link id, openid, keyword, file, issued_at, expires_at, per_hour, quota window.
# Returns the follower's oldest link time in the window when over the quota, else records.
RECORD = """
local function record(k, a)
  local per_hour = tonumber(ARGV[a + 7])
  if per_hour > 0 then
    local since = '(' .. (tonumber(ARGV[a + 5]) - tonumber(ARGV[a + 8]))
    if redis.call('ZCOUNT', KEYS[k + 3], since, '+inf') >= per_hour then
      return redis.call('ZRANGEBYSCORE', KEYS[k + 3], since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2]
    end
  end
  redis.call('HSET', KEYS[k + 1], 'openid', ARGV[a + 2], 'keyword', ARGV[a + 3],
             'file', ARGV[a + 4], 'issued_at', ARGV[a + 5], 'expires_at', ARGV[a + 6])
  for i = 2, 4 do redis.call('ZADD', KEYS[k + i], ARGV[a + 5], ARGV[a + 1]) end
  return false
end
"""
RECORD_LINK = RECORD + "return record(0, 0)\n"
# KEYS: the reply, then the link's four; ARGV: ttl ms, the answer, whether there is a link,
# then the link's eight. Returns the known reply, QUOTA .. oldest (claimed, pending) or false.
CLAIM_AND_RECORD = (
    RECORD
    + """
local v = redis.call('GET', KEYS[1])
if v then return v end
if ARGV[3] == '1' then
  local oldest = record(1, 3)
  if oldest then
    redis.call('SET', KEYS[1], 'P', 'PX', ARGV[1])
    return 'Q' .. oldest
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return false
"""
)
# KEYS: the reply, the pushed triple, then each code, then each link's four. ARGV: reply ttl ms,
# the answer, whether there is a triple, its digest, its ttl ms, now, the number of codes and of
# links; then each code's token, link id, expires_at, ms to keep its key; then each link's eight.
# Returns R .. the known digest, the known reply, C .. the taken code's number, Q .. oldest
# (claimed, pending) or false (everything written).
ANSWER_PUSH = (
    RECORD
    + """
local codes, links = tonumber(ARGV[7]), tonumber(ARGV[8])
if ARGV[3] == '1' then
  local digest = redis.call('GET', KEYS[2])
  if not digest then
    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  elseif digest ~= ARGV[4] then
    return 'R' .. digest
  end
end
local v = redis.call('GET', KEYS[1])
if v then return v end
for i = 1, codes do
  local e = redis.call('HGET', KEYS[2 + i], 'expires_at')
  if e and tonumber(e) > tonumber(ARGV[6]) then return 'C' .. i end
end
for j = 1, links do
  local oldest = record(2 + codes + 4 * (j - 1), 8 + 4 * codes + 8 * (j - 1))
  if oldest then
    redis.call('SET', KEYS[1], 'P', 'PX', ARGV[1])
    return 'Q' .. oldest
  end
end
for i = 1, codes do
  local a = 8 + 4 * (i - 1)
  redis.call('HSET', KEYS[2 + i], 'token', ARGV[a + 1], 'link_id', ARGV[a + 2],
             'expires_at', ARGV[a + 3])
  redis.call('PEXPIRE', KEYS[2 + i], ARGV[a + 4])
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return false
"""
)
# KEYS: the pushed triple; ARGV: the body's digest, ttl ms. Returns the known digest or false.
REMEMBER_PUSH = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# KEYS: the code. ARGV: now, token, link id, expires_at, ms to keep the key (the real clock's).
# A code is free when absent or past its expires_at by the store's clock (injectable in tests).
PUT_CODE = """
local v = redis.call('HGET', KEYS[1], 'expires_at')
if v and tonumber(v) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'link_id', ARGV[3], 'expires_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
# KEYS: the code, the guesser's buckets (oldest first), everyone's buckets (the same order).
# ARGV: now, per guesser, server, ms to keep a bucket, buckets per window, whether there is a
# code. ``bot.state.base.guess_refusal`` is the same rule. Returns {'R', index of the guesser's
# oldest bucket with a wrong code}, {'F', token, link id} or {'W'} (counted).
TRY_CODE = """
local n = tonumber(ARGV[5])
local mine, all, oldest = 0, 0, -1
for i = 1, n do
  local m = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
  if m > 0 and oldest < 0 then oldest = i - 1 end
  mine = mine + m
  all = all + tonumber(redis.call('GET', KEYS[1 + n + i]) or '0')
end
local per, server = tonumber(ARGV[2]), tonumber(ARGV[3])
if (per > 0 and mine >= per) or (server > 0 and all >= server and mine > 0) then
  return {'R', oldest}
end
if ARGV[6] == '1' then
  local v = redis.call('HMGET', KEYS[1], 'token', 'link_id', 'expires_at')
  if v[1] and v[3] and tonumber(v[3]) > tonumber(ARGV[1]) then return {'F', v[1], v[2]} end
end
for _, key in ipairs({KEYS[1 + n], KEYS[1 + 2 * n]}) do
  redis.call('INCR', key)
  redis.call('PEXPIRE', key, ARGV[4])
end
return {'W'}
"""


def guarded(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn the client's connection and protocol errors into StoreUnavailable."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        calls: asyncio.Semaphore | None = getattr(args[0], "calls", None) if args else None
        try:
            if calls is None:
                return await method(*args, **kwargs)
            async with calls:  # at most POOL_SIZE at once: as many connections (RedisStore)
                return await method(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None

    return wrapper


# KEYS: the message's send, the follower's sends for the quota, the message's reply. ARGV: now,
# the quota's window and limit, ms to keep the send, ms to keep the reply, the message's key.
# The sends are a sorted set scored by time (the store's clock); the reply becomes success.
CLAIM_SEND = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'sent' end
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 'over_quota' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], now, ARGV[6])
redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
redis.call('SET', KEYS[3], 'S', 'PX', ARGV[5])
return 'granted'
"""


def remembered(value: object) -> Remembered | None:
    if not isinstance(value, str):
        return None
    if value == PENDING:
        return Remembered(done=False)
    return Remembered(done=True, text=value[1:] if value.startswith(TEXT) else None)


def encode_answer(text: str | None) -> str:
    return SUCCESS if text is None else TEXT + text


def link_keys_args(link: LinkRecord, per_hour: int) -> tuple[list[str], list[str | float]]:
    """The keys and arguments of the ``record`` Lua function."""
    keys = [
        f"{PREFIX}link:{link.link_id}",
        f"{PREFIX}links",
        f"{PREFIX}user:{link.openid}",
        f"{PREFIX}file:{link.file}",
    ]
    args: list[str | float] = [
        link.link_id,
        link.openid,
        link.keyword,
        link.file,
        repr(link.issued_at),
        repr(link.expires_at),
        per_hour,
        QUOTA_WINDOW,
    ]
    return keys, args


def answer_keys_args(
    first: FirstAnswer, now: float, code_kept_after_expiry: float
) -> tuple[list[str], list[str | float]]:
    """The keys and arguments of ``ANSWER_PUSH``."""
    seen = first.seen
    keys = [PREFIX + "reply:" + first.key, PREFIX + "push:" + (seen.key if seen else "-")]
    args: list[str | float] = [
        int(first.ttl * 1000),
        encode_answer(first.text),
        int(seen is not None),
        seen.digest if seen else "",
        max(1, int(seen.ttl * 1000)) if seen else 1,
        repr(now),
        len(first.codes),
        len(first.links),
    ]
    for code in first.codes:
        keys.append(f"{PREFIX}code:{code.code}")
        keep = max(code.expires_at - now, 0) + code_kept_after_expiry
        args += [code.token, code.link_id, repr(code.expires_at), int(keep * 1000)]
    for n, link in enumerate(first.links):
        link_keys, link_args = link_keys_args(link, first.per_hour if n == 0 else 0)
        keys += link_keys
        args += link_args
    return keys, args


def push_claimed(value: object, first: FirstAnswer) -> PushClaimed:
    """``ANSWER_PUSH``'s answer as a tagged value."""
    if isinstance(value, str):
        tag, rest = value[:1], value[1:]
        if tag == REPLAYED:
            return Replayed(rest)
        if tag == CODE_TAKEN:
            return CodeTaken(first.codes[int(rest) - 1].code)
        if tag == QUOTA:
            return OverQuota(float(rest) + QUOTA_WINDOW)
    known = remembered(value)
    return Fresh() if known is None else Known(known)
