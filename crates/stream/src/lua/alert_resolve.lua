-- Resolves an active alert: removes it from alerts_active, adds the resolution to
-- alerts_recent and announces it on alert_events. A no-op when it is not active.
-- KEYS: alerts_active, alerts_recent, alert_events
-- ARGV: rule, resolved_at, value now, summary now, most recent entries kept
-- Returns 1 when this call resolved it, 0 when it was not active.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then
  return 0
end
local alert = cjson.decode(stored)
alert.state = 'resolved'
alert.resolved_at = ARGV[2]
alert.value = tonumber(ARGV[3])
alert.summary = ARGV[4]
local json = cjson.encode(alert)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], json)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('PUBLISH', KEYS[3], json)
return 1
