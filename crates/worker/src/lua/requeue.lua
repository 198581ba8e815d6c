-- Gives a worker's processing list back to the consuming end (tail) of pending_messages, so
-- the oldest message is consumed first again. Atomic: no message is ever in neither list.
-- KEYS: processing list, pending_messages
-- Returns the number of messages moved.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
return moved
