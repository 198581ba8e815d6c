-- Prepended to every script that moves messages into or out of a processing list.
-- Keeps the `in_flight` counter equal to the sum of the processing lists at O(1) per call:
-- `in_flight_by_worker` records each worker's list length as last seen, and the counter moves
-- by the difference. Every caller runs it after its moves, inside the same atomic script.
local function sync_in_flight(total_key, by_worker_key, worker, list)
  local n = redis.call('LLEN', list)
  local old = tonumber(redis.call('HGET', by_worker_key, worker) or '0')
  if n == old then
    return
  end
  if n == 0 then
    redis.call('HDEL', by_worker_key, worker)
  else
    redis.call('HSET', by_worker_key, worker, n)
  end
  redis.call('INCRBY', total_key, n - old)
end

