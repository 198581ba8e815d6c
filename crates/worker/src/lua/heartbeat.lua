-- Records a worker's heartbeat at the Redis clock, with its period, its view of PostgreSQL and
-- the server it reaches (each written only when it changed) and its output; recounts its share of in_flight, takes
-- the upkeep lease when nobody holds it, and lists the peers silent for too long. Everything
-- here is O(1) but the list of the dead, so a worker's cost does not grow with the fleet.
-- KEYS: workers, workers_postgres, workers_postgres_down, processing, in_flight,
--       in_flight_by_worker, upkeep_lease, workers_output, workers_heartbeat_ms, workers_gone,
--       workers_gone_how, workers_postgres_server
-- ARGV: worker id, dead-after in milliseconds, 'up' or 'down' (PostgreSQL as this worker sees
--       it), upkeep lease length in milliseconds, this worker's output
--       ('<batches> <rows> <rows/s>'), its heartbeat period in milliseconds, heartbeats a peer
--       may miss before it is presumed dead, the PostgreSQL server it reaches
--       ('<since ms> <address>', or '' before it reached one)
-- Returns {1 when this worker holds the upkeep lease, else 0; then the ids of the other workers
-- presumed dead}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZADD', KEYS[1], now, ARGV[1]) == 1 then
  -- New in the registry: starting, or back after a peer reclaimed it. No longer gone.
  redis.call('ZREM', KEYS[10], ARGV[1])
  redis.call('HDEL', KEYS[11], ARGV[1])
end
if ARGV[3] == 'down' then
  -- Scored by the beat, so the count of the down keeps only fresh members.
  redis.call('ZADD', KEYS[3], now, ARGV[1])
end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[3] then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  if ARGV[3] ~= 'down' then
    redis.call('ZREM', KEYS[3], ARGV[1])
  end
end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[12], ARGV[1]) ~= ARGV[8] then
  redis.call('HSET', KEYS[12], ARGV[1], ARGV[8])
end
if redis.call('HGET', KEYS[9], ARGV[1]) ~= ARGV[6] then
  redis.call('HSET', KEYS[9], ARGV[1], ARGV[6])
end
sync_in_flight(KEYS[5], KEYS[6], ARGV[1], KEYS[4])
redis.call('HSET', KEYS[8], ARGV[1], ARGV[5])
local out = {take_lease(KEYS[7], ARGV[1], ARGV[4], false) and '1' or '0'}
local dead_after, missed = tonumber(ARGV[2]), tonumber(ARGV[7])
local silent = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - dead_after), 'WITHSCORES')
for i = 1, #silent, 2 do
  local id = silent[i]
  if id ~= ARGV[1] and presumed_dead(KEYS[9], id, tonumber(silent[i + 1]), now, dead_after, missed) then
    out[#out + 1] = id
  end
end
return out
