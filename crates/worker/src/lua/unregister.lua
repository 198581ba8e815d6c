-- Takes a worker that stops out of the registry (graceful shutdown). Its processing list is
-- empty by then, or stays for a peer to claim under its id until it returns.
-- KEYS: workers, workers_heartbeat_ms, workers_postgres, workers_postgres_down, workers_output,
--       workers_gone, workers_gone_how, workers_postgres_server
-- ARGV: worker id, ms a departure is remembered, most departures remembered
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
forget_worker({KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[8]}, ARGV[1])
record_departure(KEYS[6], KEYS[7], ARGV[1], now, 'exit', tonumber(ARGV[2]), tonumber(ARGV[3]))
return 1
