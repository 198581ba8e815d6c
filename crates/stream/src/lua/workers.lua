#!lua flags=no-writes
-- Lists the workers in the registry with what each holds.
-- KEYS: workers, workers_postgres, workers_output
-- ARGV: processing-list prefix, most workers listed
-- Returns {Redis time in ms, then per worker: id, last heartbeat (ms), messages in hand,
-- PostgreSQL as the worker sees it ('up', 'down' or ''), its output ('<batches> <rows> <rows/s>'
-- or '')}, most recent heartbeat first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
for i = 1, #members, 2 do
  out[#out + 1] = members[i]
  out[#out + 1] = members[i + 1]
  out[#out + 1] = redis.call('LLEN', ARGV[1] .. members[i])
  out[#out + 1] = redis.call('HGET', KEYS[2], members[i]) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], members[i]) or ''
end
return out
