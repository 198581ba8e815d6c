-- Deletes every dead letter and returns how many there were.
-- KEYS: dead_messages
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
