-- The stats upkeep, done once a second for the whole fleet by the holder of the upkeep lease:
-- refreshes current_rps and the other window figures from their per-second buckets, prunes the
-- buckets that left the window, and appends the history sample of the current second (and of
-- the seconds since the last one, up to the gap limit), folding each minute that ended into one
-- one-minute sample. Readers never write: they read what this leaves (see stats.lua).
-- KEYS: upkeep_lease, rate_window, current_rps, accepted_window, commit_latency, window_stats,
--       pending_messages, in_flight, workers, history_1s, history_1m, workers_rate_window,
--       workers_rate, errors_window
-- ARGV: holder id, lease length in ms, 'run' or 'release', window width in seconds, worker
--       heartbeat freshness in ms, one-second points kept, one-minute points kept, longest gap
--       (seconds) filled with this sample, latency buckets per octave, replicas a push needs
--       (redis.ack_replicas), most seconds since a replica's last acknowledgement for it to
--       count as in sync
-- Returns {1, lease length} after an upkeep by this holder, {0, the lease's remaining ms} when
-- another process holds it, and {0, 0} after a release.
if ARGV[3] == 'release' then
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
  end
  return {0, 0}
end
if not take_lease(KEYS[1], ARGV[1], ARGV[2], true) then
  return {0, redis.call('PTTL', KEYS[1])}
end

local window = tonumber(ARGV[4])
local per_octave = tonumber(ARGV[9])
local time = redis.call('TIME')
local now = tonumber(time[1])
local now_ms = now * 1000 + math.floor(tonumber(time[2]) / 1000)

local function delete_fields(key, fields)
  for i = 1, #fields, 1000 do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + 999, #fields)))
  end
end

-- The rate of a per-second hash (field = unix second): its sum over the last `window` complete
-- seconds, divided by `window`, as a decimal string. The second in progress does not count yet.
-- Drops buckets older than the window.
local function window_rate(key)
  local buckets = redis.call('HGETALL', key)
  local sum, stale = 0, {}
  for i = 1, #buckets, 2 do
    local second = tonumber(buckets[i])
    if second == nil or second < now - window then
      stale[#stale + 1] = buckets[i]
    elseif second < now then
      sum = sum + tonumber(buckets[i + 1])
    end
  end
  delete_fields(key, stale)
  return string.format('%.2f', sum / window)
end

-- The sums of a hash of per-second, per-name buckets (field '<unix second>:<name>') over the
-- last `window` complete seconds, by name, divided by `window`: {name = decimal string}, and
-- whether there was any. Drops buckets older than the window.
local function window_rates_by_name(key)
  local buckets = redis.call('HGETALL', key)
  local sums, stale, any = {}, {}, false
  for i = 1, #buckets, 2 do
    local second, name = string.match(buckets[i], '^(%d+):(.+)$')
    second = tonumber(second)
    if second == nil or second < now - window then
      stale[#stale + 1] = buckets[i]
    elseif second < now then
      sums[name] = (sums[name] or 0) + tonumber(buckets[i + 1])
      any = true
    end
  end
  delete_fields(key, stale)
  local rates = {}
  for name, sum in pairs(sums) do
    rates[name] = string.format('%.2f', sum / window)
  end
  return rates, any
end

-- Each worker's rows per second over the window, in workers_rate (rewritten whole): the same
-- buckets as current_rps, so the workers' rates add up to it.
local function record_worker_rates()
  local rates, any = window_rates_by_name(KEYS[12])
  redis.call('DEL', KEYS[13])
  if any then
    local fields = {}
    for id, rate in pairs(rates) do
      fields[#fields + 1] = id
      fields[#fields + 1] = rate
    end
    for i = 1, #fields, 1000 do
      redis.call('HSET', KEYS[13], unpack(fields, i, math.min(i + 999, #fields)))
    end
  end
end

-- The ingest APIs' 5xx answers per second over the window, '<code>:<rate>,...' ('' for none).
local function error_rates()
  local rates = window_rates_by_name(KEYS[14])
  local parts = {}
  for code, rate in pairs(rates) do
    parts[#parts + 1] = code .. ':' .. rate
  end
  table.sort(parts)
  return table.concat(parts, ',')
end

-- Replicas of this primary in sync with it: INFO replication's lines 'slaveN:...,state=online'
-- whose last acknowledgement ('lag', seconds) is at most ARGV[11] old (a stopped replica stays
-- online until repl-timeout, but confirms nothing).
local function replicas_in_sync()
  local count = 0
  for line in string.gmatch(redis.call('INFO', 'replication'), '[^\r\n]+') do
    if string.match(line, '^slave%d+:') and string.find(line, 'state=online', 1, true) then
      local lag = tonumber(string.match(line, 'lag=(%d+)') or '0')
      if lag <= tonumber(ARGV[11]) then
        count = count + 1
      end
    end
  end
  return count
end

-- p50, p95, p99 of the latency histogram (field = '<second>:<bucket>') over the window, '' when
-- nothing was committed in it. Bucket b holds latencies in (2^((b-1)/k), 2^(b/k)] microseconds,
-- k buckets per octave; its midpoint is reported, in milliseconds.
local function latency_quantiles(key)
  local fields = redis.call('HGETALL', key)
  local counts, buckets, total, stale = {}, {}, 0, {}
  for i = 1, #fields, 2 do
    local second, bucket = string.match(fields[i], '^(%d+):(%d+)$')
    second = tonumber(second)
    if second == nil or second <= now - window then
      stale[#stale + 1] = fields[i]
    elseif second <= now then
      bucket = tonumber(bucket)
      if counts[bucket] == nil then
        counts[bucket] = 0
        buckets[#buckets + 1] = bucket
      end
      counts[bucket] = counts[bucket] + tonumber(fields[i + 1])
      total = total + tonumber(fields[i + 1])
    end
  end
  delete_fields(key, stale)
  local out = {'', '', ''}
  if total == 0 then
    return out
  end
  table.sort(buckets)
  local targets = {0.50, 0.95, 0.99}
  local seen, t = 0, 1
  for _, b in ipairs(buckets) do
    seen = seen + counts[b]
    while t <= 3 and seen >= targets[t] * total do
      out[t] = string.format('%.2f', 2 ^ ((b - 0.5) / per_octave) / 1000)
      t = t + 1
    end
  end
  return out
end

-- Folds the one-second samples of `minute` into one one-minute sample: rates are averaged,
-- the other series keep their maximum.
local function roll_up(minute)
  local head = redis.call('LINDEX', KEYS[11], 0)
  if head and tonumber(string.match(head, '^%[(%d+)')) >= minute * 60 then
    return
  end
  local entries = redis.call('LRANGE', KEYS[10], 0, 119)
  local n, sums, maxima, p99 = 0, {0, 0}, {0, 0, 0}, nil
  for _, entry in ipairs(entries) do
    local s = cjson.decode(entry)
    if math.floor(s[1] / 60) == minute then
      n = n + 1
      sums[1], sums[2] = sums[1] + s[2], sums[2] + s[3]
      maxima[1] = math.max(maxima[1], s[4])
      maxima[2] = math.max(maxima[2], s[5])
      maxima[3] = math.max(maxima[3], s[7])
      if s[6] ~= cjson.null and (p99 == nil or s[6] > p99) then
        p99 = s[6]
      end
    end
  end
  if n == 0 then
    return
  end
  redis.call('LPUSH', KEYS[11], string.format('[%d,%.2f,%.2f,%d,%d,%s,%d]', minute * 60,
    sums[1] / n, sums[2] / n, maxima[1], maxima[2], p99 and string.format('%.2f', p99) or 'null',
    maxima[3]))
  redis.call('LTRIM', KEYS[11], 0, tonumber(ARGV[7]) - 1)
end

-- Appends the sample of the current second (and of the seconds since the last sample, up to
-- the gap limit), rolling up the minute that just ended.
local function record_history(sample)
  local last = redis.call('LINDEX', KEYS[10], 0)
  local last_sec = last and tonumber(string.match(last, '^%[(%d+)')) or 0
  if now <= last_sec then
    return
  end
  local first = now
  if last_sec > 0 and now - last_sec <= tonumber(ARGV[8]) then
    first = last_sec + 1
  end
  if last_sec > 0 and math.floor(last_sec / 60) < math.floor(now / 60) then
    roll_up(math.floor(last_sec / 60))
  end
  for second = first, now do
    redis.call('LPUSH', KEYS[10], '[' .. second .. sample)
  end
  redis.call('LTRIM', KEYS[10], 0, tonumber(ARGV[6]) - 1)
end

local rps = window_rate(KEYS[2])
redis.call('SET', KEYS[3], rps)
local accepted_rps = window_rate(KEYS[4])
local latency = latency_quantiles(KEYS[5])
record_worker_rates()
redis.call('HSET', KEYS[6], 'accepted_per_second', accepted_rps, 'p50', latency[1],
  'p95', latency[2], 'p99', latency[3], 'updated_ms', now_ms, 'errors', error_rates(),
  'replicas_in_sync', replicas_in_sync(), 'replicas_wanted', ARGV[10])
local queue_length = redis.call('LLEN', KEYS[7])
local in_flight = math.max(0, tonumber(redis.call('GET', KEYS[8]) or '0'))
local alive = redis.call('ZCOUNT', KEYS[9], '(' .. (now_ms - tonumber(ARGV[5])), '+inf')
record_history(string.format(',%s,%s,%d,%d,%s,%d]', rps, accepted_rps, queue_length, in_flight,
  latency[3] ~= '' and latency[3] or 'null', alive))
return {1, tonumber(ARGV[2])}
