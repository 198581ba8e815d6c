-- Adds messages the ingest API accepted to accepted_total and to the current second of the
-- accepted window. Keeps the window small even when no stats reader trims it.
-- KEYS: accepted_total, accepted_window
-- ARGV: messages, window TTL in seconds, window width in seconds
local n = tonumber(ARGV[1])
local now = tonumber(redis.call('TIME')[1])
redis.call('INCRBY', KEYS[1], n)
redis.call('HINCRBY', KEYS[2], now, n)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
local window = tonumber(ARGV[3])
if redis.call('HLEN', KEYS[2]) > 4 * window then
  for _, second in ipairs(redis.call('HKEYS', KEYS[2])) do
    if tonumber(second) == nil or tonumber(second) < now - window then
      redis.call('HDEL', KEYS[2], second)
    end
  end
end
return n
