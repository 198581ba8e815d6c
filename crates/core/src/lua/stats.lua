-- Reads every stats figure in one round trip, refreshes current_rps from the rate window, and
-- appends the history sample of the current second unless one exists: the script is atomic,
-- so however many processes read, each second gets exactly one sample.
-- KEYS: total_messages, total_batches, pending_messages, rate_window, current_rps,
--       accepted_total, accepted_window, workers, workers_postgres, dead_messages,
--       dead_letters, commit_latency, history_1s, history_1m
-- ARGV: window width in seconds, processing-list prefix, worker heartbeat freshness in ms,
--       one-second points kept, one-minute points kept, longest gap (seconds) filled with
--       this reading
-- Returns: {total_messages, total_batches, queue_length, current_rps, accepted_total,
--   accepted_per_second, in_flight, workers_alive, workers_postgres_down, dead_letters (list
--   length), dead_letters_total, oldest_pending_age_ms, p50, p95, p99 (ms, '' when no commit
--   in the window), Redis time in ms}. Rates and latencies are decimal strings.
local window = tonumber(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1])
local now_ms = now * 1000 + math.floor(tonumber(time[2]) / 1000)

local function delete_fields(key, fields)
  for i = 1, #fields, 1000 do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + 999, #fields)))
  end
end

-- The rate of a per-second hash (field = unix second): its sum over the last `window` complete
-- seconds, divided by `window`, as a decimal string. The second in progress does not count yet,
-- so every reader within one second computes the same figure, whenever in that second it reads.
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

-- p50, p95, p99 of the latency histogram (field = '<second>:<bucket>') over the window.
-- Bucket b holds latencies in (2^((b-1)/8), 2^(b/8)] microseconds; its midpoint is reported.
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
      out[t] = string.format('%.2f', 2 ^ ((b - 0.5) / 8) / 1000)
      t = t + 1
    end
  end
  return out
end

-- Messages in every processing list, live workers, and live workers without PostgreSQL.
local function workers()
  local members = redis.call('ZRANGE', KEYS[8], 0, -1, 'WITHSCORES')
  local in_flight, alive, pg_down = 0, 0, 0
  for i = 1, #members, 2 do
    in_flight = in_flight + redis.call('LLEN', ARGV[2] .. members[i])
    if tonumber(members[i + 1]) > now_ms - tonumber(ARGV[3]) then
      alive = alive + 1
      if redis.call('HGET', KEYS[9], members[i]) == 'down' then
        pg_down = pg_down + 1
      end
    end
  end
  return in_flight, alive, pg_down
end

-- Age of the message at the consuming end, from the timestamp in its UUIDv7 id.
local function oldest_pending_age()
  local tail = redis.call('LINDEX', KEYS[3], -1)
  if not tail then
    return 0
  end
  local high, low = string.match(tail, '"id"%s*:%s*"(%x%x%x%x%x%x%x%x)%-(%x%x%x%x)')
  if not high then
    return 0
  end
  return math.max(0, now_ms - tonumber(high .. low, 16))
end

-- Folds the one-second samples of `minute` into one one-minute sample: rates are averaged,
-- the other series keep their maximum.
local function roll_up(minute)
  local head = redis.call('LINDEX', KEYS[14], 0)
  if head and tonumber(string.match(head, '^%[(%d+)')) >= minute * 60 then
    return
  end
  local entries = redis.call('LRANGE', KEYS[13], 0, 119)
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
  redis.call('LPUSH', KEYS[14], string.format('[%d,%.2f,%.2f,%d,%d,%s,%d]', minute * 60,
    sums[1] / n, sums[2] / n, maxima[1], maxima[2], p99 and string.format('%.2f', p99) or 'null',
    maxima[3]))
  redis.call('LTRIM', KEYS[14], 0, tonumber(ARGV[5]) - 1)
end

-- Appends the sample of the current second (and of the seconds since the last sample, up to
-- the gap limit), rolling up the minute that just ended.
local function record_history(sample)
  local last = redis.call('LINDEX', KEYS[13], 0)
  local last_sec = last and tonumber(string.match(last, '^%[(%d+)')) or 0
  if now <= last_sec then
    return
  end
  local first = now
  if last_sec > 0 and now - last_sec <= tonumber(ARGV[6]) then
    first = last_sec + 1
  end
  if last_sec > 0 and math.floor(last_sec / 60) < math.floor(now / 60) then
    roll_up(math.floor(last_sec / 60))
  end
  for second = first, now do
    redis.call('LPUSH', KEYS[13], '[' .. second .. sample)
  end
  redis.call('LTRIM', KEYS[13], 0, tonumber(ARGV[4]) - 1)
end

local rps = window_rate(KEYS[4])
redis.call('SET', KEYS[5], rps)
local accepted_rps = window_rate(KEYS[7])
local queue_length = redis.call('LLEN', KEYS[3])
local in_flight, alive, pg_down = workers()
local latency = latency_quantiles(KEYS[12])
record_history(string.format(',%s,%s,%d,%d,%s,%d]', rps, accepted_rps, queue_length, in_flight,
  latency[3] ~= '' and latency[3] or 'null', alive))
return {
  tonumber(redis.call('GET', KEYS[1]) or '0'),
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  queue_length,
  rps,
  tonumber(redis.call('GET', KEYS[6]) or '0'),
  accepted_rps,
  in_flight,
  alive,
  pg_down,
  redis.call('LLEN', KEYS[10]),
  tonumber(redis.call('GET', KEYS[11]) or '0'),
  oldest_pending_age(),
  latency[1],
  latency[2],
  latency[3],
  now_ms,
}
