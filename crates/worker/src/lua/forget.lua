-- Prepended to the scripts that take a worker out of the registry (its own unregister, a peer's
-- claim of its batch). Every per-worker entry but its processing list and its in-flight count,
-- which the caller moves or clears with the messages.

-- Forgets worker `id`: its heartbeat and its period, its view of PostgreSQL, the server it
-- reaches and its output. The keys, in this order: workers, workers_heartbeat_ms,
-- workers_postgres, workers_postgres_down, workers_output, workers_postgres_server.
local function forget_worker(keys, id)
  redis.call('ZREM', keys[1], id)
  redis.call('HDEL', keys[2], id)
  redis.call('HDEL', keys[3], id)
  redis.call('ZREM', keys[4], id)
  redis.call('HDEL', keys[5], id)
  redis.call('HDEL', keys[6], id)
end


-- Records that worker `id` left at `now` (ms, Redis clock) and how (`exit`, or `reclaimed
-- <peer id>`) in `gone` (workers_gone) and `how` (workers_gone_how), and forgets departures
-- older than `kept` ms and the oldest past `most` entries, so both stay bounded.
local function record_departure(gone, how, id, now, text, kept, most)
  redis.call('ZADD', gone, now, id)
  redis.call('HSET', how, id, text)
  local old = redis.call('ZRANGEBYSCORE', gone, '-inf', '(' .. (now - kept), 'LIMIT', 0, 100)
  local over = redis.call('ZCARD', gone) - most
  if over > 0 then
    for _, member in ipairs(redis.call('ZRANGE', gone, 0, over - 1)) do
      old[#old + 1] = member
    end
  end
  for _, member in ipairs(old) do
    redis.call('ZREM', gone, member)
    redis.call('HDEL', how, member)
  end
end
