-- Records a Redis outage a gateway lived through (its redis_down alert, firing then
-- resolved) in alerts_recent, unless another gateway has already recorded an outage that
-- overlaps it. Not published: each gateway told its own clients while Redis was down.
-- KEYS: alerts_recent
-- ARGV: firing JSON, resolved JSON, started_at, most recent entries kept
-- Returns 1 when recorded, 0 when another gateway had.
for _, entry in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, alert = pcall(cjson.decode, entry)
  if ok and type(alert) == 'table' and alert.rule == 'redis_down' and alert.state == 'resolved'
      and type(alert.resolved_at) == 'string' and alert.resolved_at >= ARGV[3] then
    return 0
  end
end
redis.call('LPUSH', KEYS[1], ARGV[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
return 1
