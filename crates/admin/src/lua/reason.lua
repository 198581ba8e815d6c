-- Prepended to the scripts that act on the dead letters whose reason matches a filter.

-- Whether dead letter `entry`'s reason contains `needle` (lower-case), case aside; an empty
-- needle matches every entry. An entry that is not a dead letter (not JSON, or with no string
-- reason) matches no needle.
local function reason_matches(entry, needle)
  if needle == '' then
    return true
  end
  local ok, letter = pcall(cjson.decode, entry)
  if not ok or type(letter) ~= 'table' or type(letter.reason) ~= 'string' then
    return false
  end
  return string.find(string.lower(letter.reason), needle, 1, true) ~= nil
end
