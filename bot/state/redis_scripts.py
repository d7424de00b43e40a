"""Redis's Lua scripts (each check-then-write of the store as one atomic step on the server),
and the error mapping every Redis call shares."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import RedisError

from bot.errors import StoreUnavailable
from bot.state.base import QUOTA_WINDOW, LinkRecord, Remembered

P = ParamSpec("P")
T = TypeVar("T")

PREFIX = "bot:"
PENDING, SUCCESS, TEXT, QUOTA = "P", "S", "T", "Q"

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
        try:
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
