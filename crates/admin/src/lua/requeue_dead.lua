-- Moves up to ARGV[1] of the oldest dead letters, stopping once ARGV[2] bytes of them were
-- read, to the back of pending_messages (its head: consumed after what is already pending),
-- in their original order, each as its exact bytes. One call moves one bounded chunk; the
-- caller calls again for the next, older entries first, so a requeue of any size keeps the
-- order and never stalls Redis. An entry that cannot be read is moved to the newest end of
-- dead_messages and counted, so it no longer blocks the oldest end; the caller bounds a whole
-- requeue by the entries there were when it began, so each is examined once.
-- KEYS: dead_messages, pending_messages
-- Returns {requeued, unreadable, examined}.
local limit = tonumber(ARGV[1])
local max_bytes = tonumber(ARGV[2])
local requeued, unreadable, bytes = 0, 0, 0
while requeued + unreadable < limit and bytes < max_bytes do
  local entry = redis.call('RPOP', KEYS[1])
  if not entry then
    break
  end
  bytes = bytes + #entry
  local payload = dead_payload(entry)
  if payload then
    redis.call('LPUSH', KEYS[2], payload)
    requeued = requeued + 1
  else
    redis.call('LPUSH', KEYS[1], entry)
    unreadable = unreadable + 1
  end
end
return {requeued, unreadable, requeued + unreadable}
