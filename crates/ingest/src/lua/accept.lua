-- Prepended to every script that queues messages: the push in chunks, and the count of what
-- entered the queue, so that a push and its count are one atomic step.

-- Most values one `unpack` hands to one LPUSH. Lua's C stack stops near 8,000 values
-- ("too many results to unpack"), so a push of any size goes in chunks of this many.
local CHUNK = 1000
-- How long accepted_window lives without a new count, in seconds.
local WINDOW_TTL = 120

-- LPUSHes ARGV[first] .. ARGV[last] onto `list`, in order, in chunks; returns the length.
local function push_chunks(list, first, last)
  local len = 0
  for at = first, last, CHUNK do
    len = redis.call('LPUSH', list, unpack(ARGV, at, math.min(at + CHUNK - 1, last)))
  end
  return len
end

-- Adds `n` queued messages to accepted_total and to the current second of accepted_window
-- (whose width is `window` seconds), keeping the window small even when no upkeep trims it.
-- `redis.pcall`: a counter key someone overwrote with another type must not fail a push that
-- has already happened.
local function count_accepted(total_key, window_key, n, window)
  if n == 0 then
    return
  end
  local now = tonumber(redis.call('TIME')[1])
  redis.pcall('INCRBY', total_key, n)
  redis.pcall('HINCRBY', window_key, now, n)
  redis.pcall('EXPIRE', window_key, WINDOW_TTL)
  local held = redis.pcall('HLEN', window_key)
  if type(held) == 'number' and held > 4 * window then
    for _, second in ipairs(redis.call('HKEYS', window_key)) do
      if tonumber(second) == nil or tonumber(second) < now - window then
        redis.call('HDEL', window_key, second)
      end
    end
  end
end
