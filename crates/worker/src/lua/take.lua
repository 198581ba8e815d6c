-- Moves up to ARGV[1] messages from the consuming end (tail) of pending_messages to the head
-- of this worker's processing list, atomically, and returns them oldest first. The processing
-- list ends as a loop of LMOVEs would leave it (the newest taken at its head), for a few
-- native commands instead of one Lua call per message.
-- KEYS: pending_messages, processing, in_flight, in_flight_by_worker
-- ARGV: most messages taken, worker id, messages this worker moved itself just before (BLMOVE
--       the batch's first: 1, else 0), counted here with the rest
local limit = tonumber(ARGV[1])
-- Newest first: the oldest message is the last.
local block = redis.call('LRANGE', KEYS[1], -limit, -1)
local taken = {}
for i = #block, 1, -1 do
  taken[#taken + 1] = block[i]
end
if #taken > 0 then
  redis.call('LTRIM', KEYS[1], 0, -#taken - 1)
  push_list(KEYS[2], taken)
end
add_in_flight(KEYS[3], KEYS[4], ARGV[2], #taken + tonumber(ARGV[3]))
return taken
