-- Prepended to the scripts that push a Lua array of messages onto a list (putting back what an
-- admission took out, moving a batch into a processing list).

-- Most values one `unpack` hands to one LPUSH: Lua's C stack stops near 8,000 values.
local CHUNK = 1000

-- LPUSHes `items` (a Lua array) onto `list` in order, in chunks.
local function push_list(list, items)
  for at = 1, #items, CHUNK do
    redis.call('LPUSH', list, unpack(items, at, math.min(at + CHUNK - 1, #items)))
  end
end
