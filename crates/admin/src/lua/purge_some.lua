-- Examines up to ARGV[1] of the oldest dead letters, stopping once ARGV[2] bytes were read:
-- deletes those whose reason contains ARGV[3], or, when it is empty, those that cannot be
-- read, and moves the others to the newest end, so that after the caller has examined every
-- entry there was, in chunks, the ones kept are back in their order (with any dead-lettered
-- meanwhile among them).
-- KEYS: dead_messages
-- Returns {purged, examined}.
local limit = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
local needle = ARGV[3]
local purged, examined, bytes = 0, 0, 0
while examined < limit and bytes < max_bytes do
  local entry = redis.call('RPOP', KEYS[1])
  if not entry then
    break
  end
  examined = examined + 1
  bytes = bytes + #entry
  local doomed
  if needle == '' then
    doomed = not dead_payload(entry)
  else
    doomed = reason_matches(entry, needle)
  end
  if doomed then
    purged = purged + 1
  else
    redis.call('LPUSH', KEYS[1], entry)
  end
end
return {purged, examined}
