-- Takes over a dead worker's batch: if the worker is still silent, removes it from the
-- registry and moves its whole processing list, oldest message first, into the claimer's
-- processing list, where it becomes the claimer's batch in hand. Atomic: a message is always
-- in exactly one list, and only one claimer gets it.
-- KEYS: workers, workers_heartbeat_ms, workers_postgres, workers_postgres_down, workers_output,
--       dead_processing (the dead worker's list), processing (the claimer's), in_flight,
--       in_flight_by_worker, workers_gone, workers_gone_how, workers_postgres_server
-- ARGV: dead worker id, dead-after in milliseconds, claimer id, heartbeats missed before dead,
--       ms a departure is remembered, most departures remembered
-- Returns the number of messages moved, or -1 when the worker has come back.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
if seen and not presumed_dead(KEYS[2], ARGV[1], tonumber(seen), now, tonumber(ARGV[2]),
    tonumber(ARGV[4])) then
  return -1
end
forget_worker({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[12]}, ARGV[1])
if seen then
  -- Presumed dead and taken out of the registry here: remembered as reclaimed, by this claimer.
  record_departure(KEYS[10], KEYS[11], ARGV[1], now, 'reclaimed ' .. ARGV[3], tonumber(ARGV[5]),
    tonumber(ARGV[6]))
end
local moved = 0
while redis.call('LMOVE', KEYS[6], KEYS[7], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
clear_in_flight(KEYS[8], KEYS[9], ARGV[1])
sync_in_flight(KEYS[8], KEYS[9], ARGV[3], KEYS[7])
return moved
