-- LPUSHes envelopes unless their idempotency key was already used, within the queue bound.
-- Atomic: the key is recorded if and only if the envelopes are queued, so a client that lost
-- the answer to its first attempt can retry with the same key and get the original answer.
-- KEYS: pending_messages, idempotency key
-- ARGV: bound (0 = none), key TTL in seconds, the JSON answer to record, then the envelopes
-- Returns {1, new length} when queued, {0, recorded answer} for a replay, {-1, length} when
-- the queue is full.
local previous = redis.call('GET', KEYS[2])
if previous then
  return {0, previous}
end
local count = #ARGV - 3
local bound = tonumber(ARGV[1])
if bound > 0 then
  local len = redis.call('LLEN', KEYS[1])
  if len + count > bound then
    return {-1, len}
  end
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[2]))
return {1, redis.call('LPUSH', KEYS[1], unpack(ARGV, 4))}
