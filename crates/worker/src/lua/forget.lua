-- Prepended to the scripts that take a worker out of the registry (its own unregister, a peer's
-- claim of its batch). Every per-worker entry but its processing list and its in-flight count,
-- which the caller moves or clears with the messages.

-- Forgets worker `id`: its heartbeat and its period, its view of PostgreSQL and its output. The
-- keys, in this order: workers, workers_heartbeat_ms, workers_postgres, workers_postgres_down,
-- workers_output.
local function forget_worker(keys, id)
  redis.call('ZREM', keys[1], id)
  redis.call('HDEL', keys[2], id)
  redis.call('HDEL', keys[3], id)
  redis.call('ZREM', keys[4], id)
  redis.call('HDEL', keys[5], id)
end

