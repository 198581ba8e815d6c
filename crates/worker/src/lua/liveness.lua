-- Prepended to the scripts that judge whether a worker is dead (a heartbeat, a claim).

-- Whether worker `id`, last seen at `seen` (ms, Redis clock), is presumed dead at `now` by a
-- judge whose dead-after is `dead_after` ms: silent for longer than that, and for longer than
-- `missed` of its own heartbeat periods (`periods`, the hash of each worker's period in ms; none
-- recorded: the judge's bound alone), so that no setting of the judge's makes a live worker that
-- beats less often look dead.
local function presumed_dead(periods, id, seen, now, dead_after, missed)
  local silence = now - seen
  local period = tonumber(redis.call('HGET', periods, id) or '0') or 0
  return silence > dead_after and silence > missed * period
end

