-- LPUSHes envelopes unless their idempotency key was already used, within the queue bound.
-- Atomic: the key is recorded if and only if the envelopes are queued, so a client that lost
-- the answer to its first attempt can retry with the same key and get the original answer.
-- At most `max keys` keys are remembered: the index (a sorted set scored by expiry time) drops
-- the expired ones, then forgets the oldest until there is room for this one.
-- KEYS: pending_messages, idempotency (the key idempotency:<key>), idempotency_keys (the index)
-- ARGV: bound (0 = none), key TTL in seconds, max keys, the JSON answer to record, then the
-- envelopes
-- Returns {1, new length} when queued, {0, recorded answer} for a replay, {-1, length} when
-- the queue is full.
local previous = redis.call('GET', KEYS[2])
if previous then
  return {0, previous}
end
local count = #ARGV - 4
local bound = tonumber(ARGV[1])
if bound > 0 then
  local len = redis.call('LLEN', KEYS[1])
  if len + count > bound then
    return {-1, len}
  end
end
local ttl = tonumber(ARGV[2])
local max_keys = tonumber(ARGV[3])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
local excess = redis.call('ZCARD', KEYS[3]) - max_keys + 1
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[3], excess)
  for i = 1, #oldest, 2 do
    redis.call('DEL', oldest[i])
  end
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ttl)
redis.call('ZADD', KEYS[3], now_ms + ttl * 1000, KEYS[2])
return {1, redis.call('LPUSH', KEYS[1], unpack(ARGV, 5))}
