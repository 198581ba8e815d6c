-- Reads every stats counter in one round trip and refreshes current_rps from the rate window.
-- KEYS: total_messages, total_batches, pending_messages, rate_window, current_rps
-- ARGV: window width in seconds
-- Returns: {total_messages, total_batches, queue_length, current_rps as a decimal string}
local window = tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1])
local elapsed = (window - 1) + tonumber(time[2]) / 1000000
local buckets = redis.call('HGETALL', KEYS[4])
local sum = 0
local stale = {}
for i = 1, #buckets, 2 do
  local second = tonumber(buckets[i])
  if second == nil or second <= now - window then
    stale[#stale + 1] = buckets[i]
  elseif second <= now then
    sum = sum + tonumber(buckets[i + 1])
  end
end
if #stale > 0 then
  redis.call('HDEL', KEYS[4], unpack(stale))
end
local rps = string.format('%.2f', sum / elapsed)
redis.call('SET', KEYS[5], rps)
return {
  tonumber(redis.call('GET', KEYS[1]) or '0'),
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  redis.call('LLEN', KEYS[3]),
  rps,
}
