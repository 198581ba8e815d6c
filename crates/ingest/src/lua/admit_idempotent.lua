-- Admits one request under an Idempotency-Key, whose messages the transaction's LPUSH just put
-- at the head of pending_messages: keeps them and records the key (and counts them in
-- accepted_total) unless the key was already used or the queue would pass its bound, in which
-- case it takes them out again. All or nothing: the key is recorded if and only if the messages
-- stay queued, so a client that lost the answer to its first attempt can retry with the same
-- key and get the original answer; a key of the wrong type, or an unusable index, takes the
-- messages out and fails the request alone.
-- The recorded answers are bounded in count (`max keys`) and in bytes (`max bytes`): the index
-- (a sorted set scored by expiry time, each member "<bytes> <key name>") and the running total
-- drop up to 1,000 expired entries, then forget the oldest until this one fits. An entry costs
-- its answer, its key name twice (key and index member) and ENTRY_OVERHEAD.
-- KEYS: pending_messages, idempotency (the key idempotency:<key>), idempotency_keys (the index),
--   idempotency_bytes (the total), accepted_total, accepted_window
-- ARGV: bound (0 = none), key TTL in seconds, max keys, max bytes, the JSON answer to record,
-- accepted_window's width and TTL in seconds, the number of messages pushed
-- Returns {1, new length} when kept, {0, recorded answer} for a replay (rewritten, so a WAIT
-- after it covers the first push), {-1, length} when the queue is full, {-2, error} when a key
-- is unusable.
local ENTRY_OVERHEAD = 128
local count = tonumber(ARGV[8])
local function undo()
  redis.call('LTRIM', KEYS[1], count, -1)
end
-- Every read first, each checked: nothing below may fail once the messages are kept.
local previous = redis.pcall('GET', KEYS[2])
local held = redis.pcall('ZCARD', KEYS[3])
local total = redis.pcall('GET', KEYS[4])
for _, read in ipairs({previous, held, total}) do
  if type(read) == 'table' and read.err then
    undo()
    return {-2, read.err}
  end
end
if previous then
  undo()
  -- Written again (same value, same expiry) so that this connection's WAIT covers the first
  -- request's push, which may have come through another connection.
  redis.call('SET', KEYS[2], previous, 'KEEPTTL')
  return {0, previous}
end
local len = redis.call('LLEN', KEYS[1])
local bound = tonumber(ARGV[1])
if bound > 0 and len > bound then
  undo()
  return {-1, len - count}
end
total = tonumber(total) or 0
local ttl = tonumber(ARGV[2])
local max_keys = tonumber(ARGV[3])
local max_bytes = tonumber(ARGV[4])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

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
count_accepted(KEYS[5], KEYS[6], count, tonumber(ARGV[6]), tonumber(ARGV[7]))
return {1, len}
