#!lua flags=no-writes
-- Reads every stats figure in one round trip, and writes nothing: the window figures
-- (current_rps, accepted_per_second, the latency percentiles) are kept by the upkeep lease's
-- holder once a second (upkeep.lua), and in_flight and the PostgreSQL view of the workers by the
-- scripts that move messages and beat. Every call is O(1) (O(log workers) for the two counts),
-- whatever the size of the fleet, and may run on a replica.
-- KEYS: total_messages, total_batches, pending_messages, current_rps, accepted_total,
--       window_stats, in_flight, workers, workers_postgres_down, dead_messages, dead_letters,
--       workers_gone, workers_gone_how
-- ARGV: worker heartbeat freshness in ms, heartbeat age from which a worker is late (ms), ms a
--       departure is remembered, most worker ids named
-- Returns: {total_messages, total_batches, queue_length, current_rps, accepted_total,
--   accepted_per_second, in_flight, workers_alive, workers_postgres_down, dead_letters (list
--   length), dead_letters_total, oldest_pending_age_ms, p50, p95, p99 (ms, '' when no commit
--   in the window), Redis time in ms, workers late, workers lost, late ids and lost ids (each
--   space-separated), replicas in sync ('' before the upkeep counted them), replicas wanted,
--   5xx answers per second ('<code>:<rate>,...')}. Rates and latencies are decimal strings.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local dead_since = now_ms - tonumber(ARGV[1])
local fresh_since = '(' .. dead_since
local named = tonumber(ARGV[4])

-- Workers late (silent past ARGV[2], not yet presumed dead), and lost: presumed dead, or
-- reclaimed by a peer lately and not back (the newest few departures are looked at, so the
-- read stays O(log workers)).
local function workers_in_trouble()
  local late_since = now_ms - tonumber(ARGV[2])
  local late = redis.call('ZCOUNT', KEYS[8], fresh_since, late_since)
  local late_ids = redis.call('ZRANGEBYSCORE', KEYS[8], fresh_since, late_since, 'LIMIT', 0, named)
  local lost = redis.call('ZCOUNT', KEYS[8], '-inf', dead_since)
  local lost_ids = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', dead_since, 'LIMIT', 0, named)
  local gone = redis.call('ZREVRANGEBYSCORE', KEYS[12], '+inf', now_ms - tonumber(ARGV[3]),
    'LIMIT', 0, 32)
  if #gone > 0 then
    local how = redis.call('HMGET', KEYS[13], unpack(gone))
    for i, id in ipairs(gone) do
      if how[i] and string.sub(how[i], 1, 9) == 'reclaimed' then
        lost = lost + 1
        if #lost_ids < named then
          lost_ids[#lost_ids + 1] = id
        end
      end
    end
  end
  return late, lost, table.concat(late_ids, ' '), table.concat(lost_ids, ' ')
end

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

local window = redis.call('HMGET', KEYS[6], 'accepted_per_second', 'p50', 'p95', 'p99',
  'replicas_in_sync', 'replicas_wanted', 'errors')
local late, lost, late_ids, lost_ids = workers_in_trouble()
local counters = redis.call('MGET', KEYS[1], KEYS[2], KEYS[4], KEYS[5], KEYS[7], KEYS[11])
local function count(value)
  return math.max(0, tonumber(value or '0') or 0)
end
return {
  count(counters[1]),
  count(counters[2]),
  redis.call('LLEN', KEYS[3]),
  counters[3] or '0.00',
  count(counters[4]),
  window[1] or '0.00',
  count(counters[5]),
  redis.call('ZCOUNT', KEYS[8], fresh_since, '+inf'),
  redis.call('ZCOUNT', KEYS[9], fresh_since, '+inf'),
  redis.call('LLEN', KEYS[10]),
  count(counters[6]),
  oldest_pending_age(),
  window[2] or '',
  window[3] or '',
  window[4] or '',
  now_ms,
  late,
  lost,
  late_ids,
  lost_ids,
  window[5] or '',
  window[6] or '0',
  window[7] or '',
}
