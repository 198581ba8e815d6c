-- Takes the lease `lease` for `holder` for `ms` milliseconds when nobody holds it; with `renew`,
-- also extends it when `holder` already holds it. Returns whether `holder` holds it.
local function take_lease(lease, holder, ms, renew)
  local current = redis.call('GET', lease)
  if current and current ~= holder then
    return false
  end
  if renew or not current then
    redis.call('SET', lease, holder, 'PX', ms)
  end
  return true
end

