#!lua flags=no-writes
-- Lists the workers in the registry with what each holds, and those that left it lately.
-- KEYS: workers, workers_postgres, workers_output, workers_rate, workers_gone, workers_gone_how,
--       workers_postgres_server
-- ARGV: processing-list prefix, most workers listed, ms a departure is remembered, most
--       departures listed
-- Returns {Redis time in ms, workers listed, then per worker: id, last heartbeat (ms), messages
-- in hand, PostgreSQL as the worker sees it ('up', 'down' or ''), its output ('<batches> <rows>
-- <rows/s>' or ''), its rows per second over the window of current_rps ('' when none), the
-- PostgreSQL server it reaches ('<since ms> <address>' or ''), most recent heartbeat first; then per departure: id, when it left (ms), how ('exit' or
-- 'reclaimed <peer>'), most recent first}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'WITHSCORES')
local out = {now, #members / 2}
for i = 1, #members, 2 do
  out[#out + 1] = members[i]
  out[#out + 1] = members[i + 1]
  out[#out + 1] = redis.call('LLEN', ARGV[1] .. members[i])
  out[#out + 1] = redis.call('HGET', KEYS[2], members[i]) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], members[i]) or ''
  out[#out + 1] = redis.call('HGET', KEYS[4], members[i]) or ''
  out[#out + 1] = redis.call('HGET', KEYS[7], members[i]) or ''
end
local gone = redis.call('ZREVRANGEBYSCORE', KEYS[5], '+inf', now - tonumber(ARGV[3]),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
for i = 1, #gone, 2 do
  out[#out + 1] = gone[i]
  out[#out + 1] = gone[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[6], gone[i]) or ''
end
return out
