-- Fires an alert unless it is already active (another gateway fired it first): records it in
-- alerts_active, adds it to alerts_recent and announces it on alert_events.
-- KEYS: alerts_active, alerts_recent, alert_events
-- ARGV: rule, alert JSON, most recent entries kept
-- Returns 1 when this call fired it, 0 when it was already active.
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
