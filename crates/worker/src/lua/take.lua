-- Moves up to ARGV[1] messages from the consuming end (tail) of pending_messages to the head
-- of this worker's processing list, atomically, and returns them oldest first.
-- KEYS: pending_messages, processing list
local limit = tonumber(ARGV[1])
local taken = {}
for i = 1, limit do
  local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not item then
    break
  end
  taken[i] = item
end
return taken
