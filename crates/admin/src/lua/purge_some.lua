-- Examines up to ARGV[1] of the oldest dead letters, stopping once ARGV[2] bytes were read:
-- deletes those whose reason contains ARGV[3], or, when it is empty, those that cannot be
-- read, and keeps the others (moved to the newest end: once the caller has examined every
-- entry there was, in chunks, they are back in their order, with any dead-lettered meanwhile
-- among them).
-- KEYS: dead_messages
-- Returns {purged, examined}.
local needle = ARGV[3]
local purged = 0
local examined = each_oldest(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), function(entry)
  local doomed
  if needle == '' then
    doomed = not dead_payload(entry)
  else
    doomed = reason_matches(entry, needle)
  end
  if doomed then
    purged = purged + 1
  end
  return not doomed
end)
return {purged, examined}
