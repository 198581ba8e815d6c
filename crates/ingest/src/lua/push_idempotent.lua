-- LPUSHes envelopes unless their idempotency key was already used, within the queue bound, and
-- counts them in accepted_total. All or nothing: the key is recorded if and only if the
-- envelopes are queued (every check and read comes before the push, every other write after
-- it), so a client that lost the answer to its first attempt can retry with the same key and
-- get the original answer, and a push that fails leaves no record behind.
-- The recorded answers are bounded in count (`max keys`) and in bytes (`max bytes`): the index
-- (a sorted set scored by expiry time, each member "<bytes> <key name>") and the running total
-- drop up to 1,000 expired entries, then forget the oldest until this one fits. An entry costs
-- its answer, its key name twice (key and index member) and ENTRY_OVERHEAD.
-- KEYS: pending_messages, idempotency (the key idempotency:<key>), idempotency_keys (the index),
--   idempotency_bytes (the total), accepted_total, accepted_window
-- ARGV: bound (0 = none), key TTL in seconds, max keys, max bytes, the JSON answer to record,
-- accepted_window's width in seconds, then the envelopes
-- Returns {1, new length} when queued, {0, recorded answer} for a replay (rewritten, so a WAIT
-- after it covers the first push), {-1, length} when the queue is full.
local ENTRY_OVERHEAD = 128
local previous = redis.call('GET', KEYS[2])
if previous then
  -- Written again (same value, same expiry) so that this connection's WAIT covers the first
  -- request's push, which may have come through another connection.
  redis.call('SET', KEYS[2], previous, 'KEEPTTL')
  return {0, previous}
end
local FIRST = 7
local count = #ARGV - FIRST + 1
local bound = tonumber(ARGV[1])
if bound > 0 then
  local len = redis.call('LLEN', KEYS[1])
  if len + count > bound then
    return {-1, len}
  end
end
local ttl = tonumber(ARGV[2])
local max_keys = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- Read before the push: a key of the wrong type fails the call here, with nothing written.
local total = tonumber(redis.call('GET', KEYS[4])) or 0
local held = redis.call('ZCARD', KEYS[3])

local len = push_chunks(KEYS[1], FIRST, #ARGV)

-- Removes one index entry and its bytes; deletes its key unless it has expired (then a new key
-- of the same name may exist already, and is not this entry's).
local function forget(member, score)
  local bytes, name = string.match(member, '^(%d+) (.+)$')
  if not bytes then
    -- An entry recorded before sizes were: its key name alone, its bytes not counted.
    bytes, name = 0, member
  end
  if tonumber(score) > now_ms then
    redis.call('DEL', name)
  end
  redis.call('ZREM', KEYS[3], member)
  return tonumber(bytes)
end

local expired = redis.call('ZRANGE', KEYS[3], '-inf', now_ms, 'BYSCORE', 'LIMIT', 0, 1000,
  'WITHSCORES')
for i = 1, #expired, 2 do
  total = total - forget(expired[i], expired[i + 1])
  held = held - 1
end
local cost = #ARGV[5] + 2 * #KEYS[2] + ENTRY_OVERHEAD
while held > 0 and (held + 1 > max_keys or total + cost > max_bytes) do
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  total = total - forget(oldest[1], oldest[2])
  held = held - 1
end
if held == 0 then
  total = 0
end
local expires = now_ms + ttl * 1000
redis.call('SET', KEYS[2], ARGV[5], 'PXAT', expires)
redis.call('ZADD', KEYS[3], expires, cost .. ' ' .. KEYS[2])
redis.call('SET', KEYS[4], total + cost)
count_accepted(KEYS[5], KEYS[6], count, tonumber(ARGV[6]))
return {1, len}
