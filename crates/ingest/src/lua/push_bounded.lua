-- LPUSHes each request's envelopes unless that would take pending_messages past the bound:
-- a request is taken or refused whole, in the order given.
-- KEYS: pending_messages
-- ARGV: bound, the number of requests k, each request's envelope count (k of them), then the
--       envelopes of every request in that order
-- Returns {the length after, then per request 1 when queued, 0 when refused}.
local len = redis.call('LLEN', KEYS[1])
local bound = tonumber(ARGV[1])
local requests = tonumber(ARGV[2])
local at = 3 + requests
local reply = {0}
for i = 1, requests do
  local count = tonumber(ARGV[2 + i])
  if len + count <= bound then
    len = redis.call('LPUSH', KEYS[1], unpack(ARGV, at, at + count - 1))
    reply[i + 1] = 1
  else
    reply[i + 1] = 0
  end
  at = at + count
end
reply[1] = len
return reply
