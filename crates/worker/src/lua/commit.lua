-- Records a batch PostgreSQL has committed, in one atomic step: clears the processing list,
-- bumps the counters and the rate window, dead-letters the poison messages, and announces the
-- batch on batch_events.
-- KEYS: processing, total_messages, total_batches, rate_window, batch_events, dead_messages,
--       dead_letters, commit_latency, dead_letters_trimmed, in_flight, in_flight_by_worker,
--       workers_rate_window
-- ARGV: rows inserted, batch event JSON, rate window TTL in seconds, the batch's POST→commit
--       latency histogram ('bucket:count,...'), most entries kept in dead_messages, worker id,
--       then one JSON entry per dead letter
-- Returns 1 when applied, 0 when the processing list was already cleared (a retry of a call
-- whose reply was lost), so a batch is never counted twice.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local inserted = tonumber(ARGV[1])
redis.call('DEL', KEYS[1])
clear_in_flight(KEYS[10], KEYS[11], ARGV[6])
redis.call('INCRBY', KEYS[2], inserted)
redis.call('INCR', KEYS[3])
local now = redis.call('TIME')[1]
redis.call('HINCRBY', KEYS[4], now, inserted)
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[12], now .. ':' .. ARGV[6], inserted)
redis.call('EXPIRE', KEYS[12], tonumber(ARGV[3]))
for bucket, count in string.gmatch(ARGV[4], '(%d+):(%d+)') do
  redis.call('HINCRBY', KEYS[8], now .. ':' .. bucket, count)
end
redis.call('EXPIRE', KEYS[8], tonumber(ARGV[3]))
local dead = #ARGV - 6
if dead > 0 then
  for i = 7, #ARGV do
    redis.call('LPUSH', KEYS[6], ARGV[i])
  end
  redis.call('INCRBY', KEYS[7], dead)
  local keep = tonumber(ARGV[5])
  local over = redis.call('LLEN', KEYS[6]) - keep
  if over > 0 then
    redis.call('LTRIM', KEYS[6], 0, keep - 1)
    redis.call('INCRBY', KEYS[9], over)
  end
end
redis.call('PUBLISH', KEYS[5], ARGV[2])
return 1
