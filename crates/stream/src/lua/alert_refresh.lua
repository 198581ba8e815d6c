-- Refreshes the text and value of an alert that is still firing, as the gateway that fired it
-- measures them: replaces its entry in alerts_active and announces it on alert_events (clients
-- keep one entry per rule and start). Nothing when the alert resolved or fired again since.
-- KEYS: alerts_active, alert_events
-- ARGV: rule, the alert's started_at, alert JSON
-- Returns 1 when refreshed, 0 when the alert is no longer the one that started then.
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then
  return 0
end
local ok, alert = pcall(cjson.decode, held)
if not ok or type(alert) ~= 'table' or alert['started_at'] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
