-- LPUSHes the envelopes unless that would take pending_messages past the bound.
-- KEYS: pending_messages
-- ARGV: bound, then the envelopes
-- Returns the new length, or -(current length) - 1 when refused.
local len = redis.call('LLEN', KEYS[1])
if len + #ARGV - 1 > tonumber(ARGV[1]) then
  return -len - 1
end
return redis.call('LPUSH', KEYS[1], unpack(ARGV, 2))
