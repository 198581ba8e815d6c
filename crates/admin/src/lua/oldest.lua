-- Prepended to the scripts that work through dead_messages from its oldest end, one bounded
-- chunk per call.

-- Pops the oldest entries of `list`, at most `limit` of them, stopping after the one that brings
-- the bytes read to `max_bytes`, and hands each to `visit(entry)`: the entry is kept (pushed to
-- the newest end, so that once the caller has examined every entry there was, the kept ones are
-- back in their order) when `visit` returns true, and gone otherwise. Returns how many entries
-- were examined.
local function each_oldest(list, limit, max_bytes, visit)
  local examined, bytes = 0, 0
  while examined < limit and bytes < max_bytes do
    local entry = redis.call('RPOP', list)
    if not entry then
      break
    end
    examined = examined + 1
    bytes = bytes + #entry
    if visit(entry) then
      redis.call('LPUSH', list, entry)
    end
  end
  return examined
end
