-- Records a worker's heartbeat at the Redis clock with its view of PostgreSQL, and lists peers
-- silent for too long.
-- KEYS: workers, workers_postgres
-- ARGV: worker id, dead-after in milliseconds, 'up' or 'down' (PostgreSQL as this worker sees it)
-- Returns the ids of the workers presumed dead.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])))
