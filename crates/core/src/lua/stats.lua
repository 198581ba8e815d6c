#!lua flags=no-writes
-- Reads every stats figure in one round trip, and writes nothing: the window figures
-- (current_rps, accepted_per_second, the latency percentiles) are kept by the upkeep lease's
-- holder once a second (upkeep.lua), and in_flight and the PostgreSQL view of the workers by the
-- scripts that move messages and beat. Every call is O(1) (O(log workers) for the two counts),
-- whatever the size of the fleet, and may run on a replica.
-- KEYS: total_messages, total_batches, pending_messages, current_rps, accepted_total,
--       window_stats, in_flight, workers, workers_postgres_down, dead_messages, dead_letters
-- ARGV: worker heartbeat freshness in ms
-- Returns: {total_messages, total_batches, queue_length, current_rps, accepted_total,
--   accepted_per_second, in_flight, workers_alive, workers_postgres_down, dead_letters (list
--   length), dead_letters_total, oldest_pending_age_ms, p50, p95, p99 (ms, '' when no commit
--   in the window), Redis time in ms}. Rates and latencies are decimal strings.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local fresh_since = '(' .. (now_ms - tonumber(ARGV[1]))

-- Age of the message at the consuming end, from the timestamp in its UUIDv7 id.
local function oldest_pending_age()
  local tail = redis.call('LINDEX', KEYS[3], -1)
  if not tail then
    return 0
  end
  local high, low = string.match(tail, '"id"%s*:%s*"(%x%x%x%x%x%x%x%x)%-(%x%x%x%x)')
  if not high then
    return 0
  end
  return math.max(0, now_ms - tonumber(high .. low, 16))
end

local window = redis.call('HMGET', KEYS[6], 'accepted_per_second', 'p50', 'p95', 'p99')
return {
  tonumber(redis.call('GET', KEYS[1]) or '0'),
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  redis.call('LLEN', KEYS[3]),
  redis.call('GET', KEYS[4]) or '0.00',
  tonumber(redis.call('GET', KEYS[5]) or '0'),
  window[1] or '0.00',
  math.max(0, tonumber(redis.call('GET', KEYS[7]) or '0')),
  redis.call('ZCOUNT', KEYS[8], fresh_since, '+inf'),
  redis.call('ZCOUNT', KEYS[9], fresh_since, '+inf'),
  redis.call('LLEN', KEYS[10]),
  tonumber(redis.call('GET', KEYS[11]) or '0'),
  oldest_pending_age(),
  window[2] or '',
  window[3] or '',
  window[4] or '',
  now_ms,
}
