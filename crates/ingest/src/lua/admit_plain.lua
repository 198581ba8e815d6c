-- Admits the plain requests of a group. The transaction has just put their messages at the head
-- of pending_messages (each request's in order, the requests one after the other) and added
-- them all to accepted_total and to a second of accepted_window, natively. Each request is kept
-- or taken out whole, first come first kept, so that the queue never holds more than the
-- bound. Usually all fit and the script only looks; else the block is taken out, the requests
-- that fit are put back in their order, and the counts are corrected by what was taken out.
-- KEYS: pending_messages, accepted_total, accepted_window
-- ARGV: bound, accepted_window's width in seconds, the second the window counted them in,
--       1 to trim the window (once a second per thread) or 0, the number of requests k, then
--       each request's message count (k of them)
-- Returns {the length after, then per request 1 when queued, 0 when refused}.
local bound, second = tonumber(ARGV[1]), ARGV[3]
local requests = tonumber(ARGV[5])
local total = 0
for i = 1, requests do
  total = total + tonumber(ARGV[5 + i])
end
local len = redis.pcall('LLEN', KEYS[1])
if type(len) == 'table' then
  -- pending_messages is not a list: the LPUSH failed too, and nothing was queued.
  redis.pcall('INCRBY', KEYS[2], -total)
  redis.pcall('HINCRBY', KEYS[3], second, -total)
  return len
end
local before = len - total
local reply, taken = {len}, total
for i = 1, requests do
  reply[i + 1] = 1
end
if len > bound then
  taken = 0
  for i = 1, requests do
    local count = tonumber(ARGV[5 + i])
    if before + taken + count <= bound then
      taken = taken + count
    else
      reply[i + 1] = 0
    end
  end
  -- Newest first: the first request's first message is block[total].
  local block = redis.call('LRANGE', KEYS[1], 0, total - 1)
  redis.call('LTRIM', KEYS[1], total, -1)
  local kept, at = {}, total
  for i = 1, requests do
    local count = tonumber(ARGV[5 + i])
    if reply[i + 1] == 1 then
      for j = 0, count - 1 do
        kept[#kept + 1] = block[at - j]
      end
    end
    at = at - count
  end
  push_list(KEYS[1], kept)
  redis.pcall('INCRBY', KEYS[2], taken - total)
  redis.pcall('HINCRBY', KEYS[3], second, taken - total)
  reply[1] = before + taken
end
if ARGV[4] == '1' then
  trim_window(KEYS[3], tonumber(ARGV[2]), tonumber(second))
end
return reply
