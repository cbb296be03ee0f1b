-- All-or-nothing admission for one request: every check is evaluated, and state is written only
-- if all pass. One round trip. The clock is the server's (TIME), so every gateway instance
-- shares it. Mirrors gcra.ts (gcraStep) and store-local.ts (LocalStore.admit).
--
-- KEYS[i]: the state key of check i.
-- ARGV[1]: the request id (member of concurrency sets).
-- ARGV[2 + 4(i-1) ..]: kind, a, b, c
--   'g' GCRA:        a = emission interval T (ms), b = tolerance tau (ms), c = cost (units)
--   's' slot set:    a = limit, b = slot TTL (ms), c = unused
-- Returns integers: { ok (1|0), failed check (1-based, 0 = none), retry ms,
--                     remaining_1, reset_ms_1, remaining_2, reset_ms_2, ... }
if redis.replicate_commands then redis.replicate_commands() end
local EPS = 0.001
local t = redis.call('TIME')
-- ms since 2023-11-14 keeps the numbers small, so sums of T stay exact to well under EPS.
local now = (tonumber(t[1]) - 1700000000) * 1000 + tonumber(t[2]) / 1000
local member = ARGV[1]
local n = #KEYS
local out = { 1, 0, 0 }
local nexts = {}
local failed = 0
local retry = 0
for i = 1, n do
  local j = 2 + (i - 1) * 4
  local kind = ARGV[j]
  local a = tonumber(ARGV[j + 1])
  local b = tonumber(ARGV[j + 2])
  local c = tonumber(ARGV[j + 3])
  if kind == 'g' then
    local v = redis.call('GET', KEYS[i])
    local tat = v and tonumber(v) or 0
    local base = tat
    if base < now then base = now end
    local nxt = base + c * a
    local diff = nxt - now
    if diff > b + EPS then
      local held = base - now
      out[2 + 2 * i] = math.max(0, math.floor((b - held + EPS) / a))
      out[3 + 2 * i] = math.ceil(held)
      if diff - b > retry then failed = i; retry = diff - b end
    else
      nexts[i] = nxt
      out[2 + 2 * i] = math.max(0, math.floor((b - diff + EPS) / a))
      out[3 + 2 * i] = math.ceil(diff)
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local used = redis.call('ZCARD', KEYS[i])
    out[3 + 2 * i] = 0
    if used < a then
      out[2 + 2 * i] = a - used - 1
    else
      out[2 + 2 * i] = 0
      if 1000 > retry then failed = i; retry = 1000 end
    end
  end
end
if failed > 0 then
  out[1] = 0
  out[2] = failed
  out[3] = math.ceil(retry)
  return out
end
for i = 1, n do
  local j = 2 + (i - 1) * 4
  if ARGV[j] == 'g' then
    redis.call('SET', KEYS[i], string.format('%.5f', nexts[i]), 'PX', math.ceil(nexts[i] - now) + 1)
  else
    local ttl = tonumber(ARGV[j + 2])
    redis.call('ZADD', KEYS[i], now + ttl, member)
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return out
