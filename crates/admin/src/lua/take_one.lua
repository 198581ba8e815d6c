-- Looks for the dead letter whose SHA-1 is ARGV[1] among the entries at ARGV[2] (counted from
-- the newest) and after, examining at most ARGV[3] entries or ARGV[4] bytes of them, and takes
-- it out: ARGV[5] 'requeue' puts its exact bytes at the back of pending_messages (consumed
-- after what is already pending), 'delete' drops it. Entries with the same bytes are the same
-- dead letter: LREM removes the newest copy.
-- KEYS: dead_messages, pending_messages
-- Returns {found, examined}: found is 1 when taken, 0 when not among those examined, -1 when
-- found but it cannot be requeued (unreadable or truncated: requeue cannot know its bytes).
local wanted, from = ARGV[1], tonumber(ARGV[2])
local limit, max_bytes, action = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local found = 0
local examined = each_entry(KEYS[1], from, limit, max_bytes, function(entry)
  if redis.sha1hex(entry) ~= wanted then
    return false
  end
  if action == 'requeue' then
    local payload = dead_payload(entry)
    if not payload then
      found = -1
      return true
    end
    redis.call('LPUSH', KEYS[2], payload)
  end
  redis.call('LREM', KEYS[1], 1, entry)
  found = 1
  return true
end)
return {found, examined}
