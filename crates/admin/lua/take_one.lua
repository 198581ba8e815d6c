-- Looks for the dead letter whose SHA-1 is ARGV[1] among the entries at ARGV[2] (counted from
-- the newest) and after, examining at most ARGV[3] entries or ARGV[4] bytes of them, and takes
-- it out: ARGV[5] 'requeue' puts its exact bytes at the back of pending_messages (consumed
-- after what is already pending), 'delete' drops it. Entries with the same bytes are the same
-- dead letter: LREM removes the newest copy.
-- KEYS: dead_messages, pending_messages
-- Returns {found, examined}: found is 1 when taken, 0 when not among those examined, -1 when
-- found but unreadable (not requeued: requeue cannot know its bytes).
local wanted, from = ARGV[1], tonumber(ARGV[2])
local limit, max_bytes, action = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local entries = redis.call('LRANGE', KEYS[1], from, from + limit - 1)
local bytes = 0
for i, entry in ipairs(entries) do
  if redis.sha1hex(entry) == wanted then
    if action == 'requeue' then
      local payload = dead_payload(entry)
      if not payload then
        return {-1, i}
      end
      redis.call('LPUSH', KEYS[2], payload)
    end
    redis.call('LREM', KEYS[1], 1, entry)
    return {1, i}
  end
  bytes = bytes + #entry
  if bytes >= max_bytes then
    return {0, i}
  end
end
return {0, #entries}
