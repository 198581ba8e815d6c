-- Moves up to ARGV[1] messages from the consuming end (tail) of pending_messages to the head
-- of this worker's processing list, atomically, and returns them oldest first.
-- KEYS: pending_messages, processing, in_flight, in_flight_by_worker
-- ARGV: most messages taken, worker id, messages this worker moved itself just before (BLMOVE
--       the batch's first: 1, else 0), counted here with the rest
local limit = tonumber(ARGV[1])
local taken = {}
for i = 1, limit do
  local item = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not item then
    break
  end
  taken[i] = item
end
add_in_flight(KEYS[3], KEYS[4], ARGV[2], #taken + tonumber(ARGV[3]))
return taken
