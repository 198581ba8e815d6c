-- The bytes a dead letter queued (payload_hex when the entry was not UTF-8, payload
-- otherwise), or nil when they cannot be requeued: the entry is not JSON, has no string
-- payload or hex that is not lower-case pairs, or keeps only the first bytes of a longer
-- entry (payload_bytes). Prepended to the scripts that requeue or purge dead letters.
local function dead_payload(entry)
  local ok, letter = pcall(cjson.decode, entry)
  if not ok or type(letter) ~= 'table' or letter.payload_bytes ~= nil then
    return nil
  end
  local hex = letter.payload_hex
  if hex ~= nil then
    if type(hex) == 'string' and #hex % 2 == 0 and not string.find(hex, '[^0-9a-f]') then
      return (string.gsub(hex, '..', function(pair)
        return string.char(tonumber(pair, 16))
      end))
    end
    return nil
  end
  if type(letter.payload) == 'string' then
    return letter.payload
  end
  return nil
end

