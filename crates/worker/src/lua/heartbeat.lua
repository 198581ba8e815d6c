-- Records a worker's heartbeat at the Redis clock with its view of PostgreSQL, brings its share
-- of in_flight up to date (a message that BLMOVE took counts from here or from the next take),
-- takes the upkeep lease when nobody holds it, and lists peers silent for too long. Everything
-- here is O(1) but the list of the dead, so a worker's cost does not grow with the fleet.
-- KEYS: workers, workers_postgres, workers_postgres_down, processing, in_flight,
--       in_flight_by_worker, upkeep_lease
-- ARGV: worker id, dead-after in milliseconds, 'up' or 'down' (PostgreSQL as this worker sees
--       it), upkeep lease length in milliseconds
-- Returns {1 when this worker holds the upkeep lease, else 0; then the ids of the workers
-- presumed dead}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[3] == 'down' then
  redis.call('ZADD', KEYS[3], now, ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
sync_in_flight(KEYS[5], KEYS[6], ARGV[1], KEYS[4])
local holder = redis.call('GET', KEYS[7])
local holds = '0'
if holder == ARGV[1] then
  holds = '1'
elseif not holder then
  redis.call('SET', KEYS[7], ARGV[1], 'PX', ARGV[4])
  holds = '1'
end
local out = {holds}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))) do
  out[#out + 1] = id
end
return out
