-- Deletes every dead letter. KEYS: dead_messages. Returns how many there were.
local n = redis.call('LLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
