-- Moves up to ARGV[1] of the oldest dead letters whose reason contains ARGV[3] (all when it is
-- empty), stopping once ARGV[2] bytes of them were read, to the back of pending_messages (its
-- head: consumed after what is already pending), in their original order, each as its exact
-- bytes. One call moves one bounded chunk; the caller calls again for the next, older entries
-- first, so a requeue of any size keeps the order and never stalls Redis. An entry that does
-- not match, or matches but cannot be read (counted), is kept, moved to the newest end of
-- dead_messages, so it no longer blocks the oldest end; the caller bounds a whole requeue by
-- the entries there were when it began, so each is examined once.
-- KEYS: dead_messages, pending_messages
-- Returns {requeued, unreadable, examined}.
local needle = ARGV[3]
local requeued, unreadable = 0, 0
local examined = each_oldest(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), function(entry)
  local matches = reason_matches(entry, needle)
  local payload = matches and dead_payload(entry)
  if payload then
    redis.call('LPUSH', KEYS[2], payload)
    requeued = requeued + 1
    return false
  end
  if matches then
    unreadable = unreadable + 1
  end
  return true
end)
return {requeued, unreadable, examined}
