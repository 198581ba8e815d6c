-- Records a worker's heartbeat at the Redis clock with its view of PostgreSQL (written only when
-- it changed), and lists peers silent for too long. On a full beat (one in four, once a second)
-- it also recounts the worker's share of in_flight and takes the upkeep lease when nobody holds
-- it. Everything here is O(1) but the list of the dead, so a worker's cost does not grow with
-- the fleet.
-- KEYS: workers, workers_postgres, workers_postgres_down, processing, in_flight,
--       in_flight_by_worker, upkeep_lease, workers_output
-- ARGV: worker id, dead-after in milliseconds, 'up' or 'down' (PostgreSQL as this worker sees
--       it), upkeep lease length in milliseconds, 'full' or 'light', this worker's output
--       ('<batches> <rows> <rows/s>', written on a full beat)
-- Returns {'1' when this worker holds the upkeep lease, '0' when it does not, '' on a light
-- beat (unknown); then the ids of the workers presumed dead}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
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
local holds = ''
if ARGV[5] == 'full' then
  sync_in_flight(KEYS[5], KEYS[6], ARGV[1], KEYS[4])
  redis.call('HSET', KEYS[8], ARGV[1], ARGV[6])
  local holder = redis.call('GET', KEYS[7])
  holds = '0'
  if holder == ARGV[1] then
    holds = '1'
  elseif not holder then
    redis.call('SET', KEYS[7], ARGV[1], 'PX', ARGV[4])
    holds = '1'
  end
end
local out = {holds}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))) do
  out[#out + 1] = id
end
return out
