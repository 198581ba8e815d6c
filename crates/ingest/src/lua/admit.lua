-- Prepended to the scripts that admit a push. Every push is one transaction: MULTI, the LPUSH
-- of the request's messages (native, so the messages never pass through Lua), the admit script,
-- then EXEC. The script sees the messages already at the head of pending_messages and keeps
-- them or takes them out again (LTRIM), before any other client can see the queue: the bound,
-- the idempotency record and the accepted count are decided in the same atomic step as the push.
-- `push_list` (putting messages back) is core's `push_list.lua`, prepended before this.

-- Keeps accepted_window (per-second counts, `window` seconds wide) small even when no upkeep
-- trims it: past four windows' worth of seconds, drops those older than one window.
local function trim_window(window_key, window, now)
  local held = redis.pcall('HLEN', window_key)
  if type(held) == 'number' and held > 4 * window then
    for _, second in ipairs(redis.call('HKEYS', window_key)) do
      if tonumber(second) == nil or tonumber(second) < now - window then
        redis.call('HDEL', window_key, second)
      end
    end
  end
end

-- Adds `n` queued messages to accepted_total and to the current second of accepted_window,
-- which lives `ttl` seconds without a new count. `redis.pcall`: a counter key someone
-- overwrote with another type must not fail a push that was admitted.
local function count_accepted(total_key, window_key, n, window, ttl)
  local now = tonumber(redis.call('TIME')[1])
  redis.pcall('INCRBY', total_key, n)
  if redis.pcall('HINCRBY', window_key, now, n) == n then
    -- A new second: the first count in it.
    redis.pcall('EXPIRE', window_key, ttl)
    trim_window(window_key, window, now)
  end
end
