-- A page of dead_messages, newest first, bounded by count and by bytes: the entries from
-- ARGV[1] (0 = newest) on, at most ARGV[2] of them, stopping after the one that brings the
-- bytes read to ARGV[3]; of each, its SHA-1 (its id), its size, and at most its first ARGV[4]
-- bytes.
-- KEYS: dead_messages
-- Returns {LLEN, then per entry: id, size, first bytes}.
local from, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_bytes, cut = tonumber(ARGV[3]), tonumber(ARGV[4])
local reply = {redis.call('LLEN', KEYS[1])}
each_entry(KEYS[1], from, limit, max_bytes, function(entry)
  reply[#reply + 1] = redis.sha1hex(entry)
  reply[#reply + 1] = #entry
  reply[#reply + 1] = string.sub(entry, 1, cut)
  return false
end)
return reply
