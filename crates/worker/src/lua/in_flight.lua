-- Prepended to every script that moves messages into or out of a processing list.
-- Keeps `in_flight` equal to the sum of the processing lists at O(1) per call:
-- `in_flight_by_worker` records each worker's list length as counted, and `in_flight` is the
-- sum of that hash. The moving scripts count by difference (they know how many they moved);
-- a worker's heartbeat recounts its own list once a second, which also counts what BLMOVE took
-- alone (a batch of one) and repairs any drift.

-- Adds `n` (may be negative) to `worker`'s count and to the total.
local function add_in_flight(total_key, by_worker_key, worker, n)
  if n == 0 then
    return
  end
  if redis.call('HINCRBY', by_worker_key, worker, n) <= 0 then
    redis.call('HDEL', by_worker_key, worker)
  end
  redis.call('INCRBY', total_key, n)
end

-- `worker`'s list is now empty: takes its whole count off the total.
local function clear_in_flight(total_key, by_worker_key, worker)
  local old = tonumber(redis.call('HGET', by_worker_key, worker) or '0')
  if old ~= 0 then
    redis.call('HDEL', by_worker_key, worker)
    redis.call('INCRBY', total_key, -old)
  end
end

-- Recounts `worker`'s `list` and moves the total by the difference.
local function sync_in_flight(total_key, by_worker_key, worker, list)
  local n = redis.call('LLEN', list)
  local old = tonumber(redis.call('HGET', by_worker_key, worker) or '0')
  add_in_flight(total_key, by_worker_key, worker, n - old)
end

