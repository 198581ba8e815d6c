-- Moves up to ARGV[1] dead letters, oldest first, back to the consuming end (tail) of
-- pending_messages, so they are retried next and in their original order, each as its exact
-- bytes (payload_hex when the entry was not UTF-8, payload otherwise). Entries whose payload
-- cannot be read stay in dead_messages.
-- KEYS: dead_messages, pending_messages
-- Returns the number requeued.
local limit = tonumber(ARGV[1])
local available = redis.call('LLEN', KEYS[1])
if limit > available then
  limit = available
end
local payloads = {}
local unreadable = {}
for i = 1, limit do
  local entry = redis.call('RPOP', KEYS[1])
  local ok, letter = pcall(cjson.decode, entry)
  local hex = ok and type(letter) == 'table' and letter.payload_hex
  if type(hex) == 'string' and #hex % 2 == 0 and not string.find(hex, '[^0-9a-f]') then
    payloads[#payloads + 1] = string.gsub(hex, '..', function(pair)
      return string.char(tonumber(pair, 16))
    end)
  elseif ok and type(letter) == 'table' and hex == nil and type(letter.payload) == 'string' then
    payloads[#payloads + 1] = letter.payload
  else
    unreadable[#unreadable + 1] = entry
  end
end
-- The oldest must end up last at the tail: push the newest first.
for i = #payloads, 1, -1 do
  redis.call('RPUSH', KEYS[2], payloads[i])
end
for i = #unreadable, 1, -1 do
  redis.call('RPUSH', KEYS[1], unreadable[i])
end
return #payloads
