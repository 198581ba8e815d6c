-- LPUSHes each request's envelopes unless that would take pending_messages past the bound:
-- a request is taken or refused whole, in the order given, and what is taken is counted in
-- accepted_total in the same step. Every check comes before the first write, so the script
-- either queues what it says it queued or fails having written nothing.
-- KEYS: pending_messages, accepted_total, accepted_window
-- ARGV: bound, accepted_window's width in seconds, the number of requests k, each request's
--       envelope count (k of them), then the envelopes of every request in that order
-- Returns {the length after, then per request 1 when queued, 0 when refused}.
local len = redis.call('LLEN', KEYS[1])
local bound = tonumber(ARGV[1])
local requests = tonumber(ARGV[3])
local reply = {0}
-- Which requests fit, decided before anything is written.
local at, taken, ranges = 4 + requests, 0, {}
for i = 1, requests do
  local count = tonumber(ARGV[3 + i])
  if len + taken + count <= bound then
    reply[i + 1] = 1
    taken = taken + count
    ranges[#ranges + 1] = {at, at + count - 1}
  else
    reply[i + 1] = 0
  end
  at = at + count
end
for _, range in ipairs(ranges) do
  len = push_chunks(KEYS[1], range[1], range[2])
end
count_accepted(KEYS[2], KEYS[3], taken, tonumber(ARGV[2]))
reply[1] = len
return reply
