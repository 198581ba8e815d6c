-- A page of dead_messages, newest first, bounded by count and by bytes: from ARGV[1] (0 =
-- newest) on, the entries whose reason contains ARGV[5] (every entry when it is empty), at most
-- ARGV[2] of them, examining at most ARGV[6] entries and stopping after the one that brings the
-- bytes read to ARGV[3]; of each, its SHA-1 (its id), its size, and at most its first ARGV[4]
-- bytes.
-- KEYS: dead_messages
-- Returns {LLEN, entries examined, then per entry listed: id, size, first bytes}.
local from, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_bytes, cut, needle = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local examine = needle == '' and limit or tonumber(ARGV[6])
local reply = {redis.call('LLEN', KEYS[1]), 0}
local listed = 0
reply[2] = each_entry(KEYS[1], from, examine, max_bytes, function(entry)
  if not reason_matches(entry, needle) then
    return false
  end
  reply[#reply + 1] = redis.sha1hex(entry)
  reply[#reply + 1] = #entry
  reply[#reply + 1] = string.sub(entry, 1, cut)
  listed = listed + 1
  return listed >= limit
end)
return reply
