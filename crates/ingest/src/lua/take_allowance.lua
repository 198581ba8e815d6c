-- Takes up to `want` messages from a caller's fleet-wide allowance: a token bucket of `burst`
-- tokens refilled at `rate` a second, kept in one hash (tokens, and when it was last looked at,
-- in microseconds of Redis's clock, so that every ingest API shares one clock). The ingest APIs
-- take a little ahead (about a tenth of a second's worth) and spend it in memory: one call per
-- lease, not per request.
-- KEYS: allowance (the key allowance:<key id>)
-- ARGV: rate, burst, want
-- Returns {granted, microseconds until the next token when the bucket is empty, else 0}
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
if now > at then
    tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
end
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', now))
-- Gone once it would be full again: an idle caller leaves nothing behind.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
local wait = 0
if tokens < 1 then
    wait = math.ceil((1 - tokens) * 1000000 / rate)
end
return {granted, wait}
