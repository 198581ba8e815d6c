-- Prepended to the scripts that read dead_messages front to back: the entries from a position
-- on, fetched in chunks that start at one entry and double, so that one call never copies more
-- than about twice its byte budget out of the list, however large the entries.

-- Calls `visit(entry, position)` for the entries of `list` from `from` (0 = newest) on, at most
-- `limit` of them, stopping after the one that brings the bytes read to `max_bytes` or past it,
-- or when `visit` returns true. Returns how many entries were visited.
local function each_entry(list, from, limit, max_bytes, visit)
  local visited, bytes, chunk = 0, 0, 1
  while visited < limit and bytes < max_bytes do
    local wanted = math.min(chunk, limit - visited)
    local entries = redis.call('LRANGE', list, from + visited, from + visited + wanted - 1)
    for _, entry in ipairs(entries) do
      visited = visited + 1
      bytes = bytes + #entry
      if visit(entry, from + visited - 1) or bytes >= max_bytes then
        return visited
      end
    end
    if #entries < wanted then
      return visited
    end
    chunk = math.min(chunk * 2, 64)
  end
  return visited
end
