-- Budget admission: all-or-nothing over every counter of one request (plugins/budget/store.ts
-- documents the algorithm; LocalBudgetStore is the same in TypeScript).
-- KEYS[1] settle marker of the request; then per counter i: hash, reservations zset, scope index set.
-- ARGV: id, now, reservation expiry, n, amount usd/tokens/requests, enforce (1/0),
--       then per counter: hard (1/0), limit usd/tokens/requests (-1 = none), key expiry (ms), scope id.
-- Returns {status, failed, unit, spent/reserved x3 per counter}; status 1 ok, 0 refused, 2 over, -1 settled.
local id = ARGV[1]
local now = tonumber(ARGV[2])
local resExp = ARGV[3]
local n = tonumber(ARGV[4])
local amt = { tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]) }
local enforce = ARGV[8] == '1'
local RES = { 'ru', 'rt', 'rq' }
local function s(x) return string.format('%.0f', x) end

local function state(h)
  local v = redis.call('HMGET', h, 'su', 'st', 'sq', 'ru', 'rt', 'rq')
  local out = {}
  for j = 1, 6 do out[j] = tonumber(v[j]) or 0 end
  return out
end

local function purge(h, z)
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 512)
  for _, m in ipairs(old) do
    local v = redis.call('HGET', h, 'r:' .. m)
    if v then
      local u, t, q = string.match(v, '^(%-?%d+) (%-?%d+) (%-?%d+)$')
      local r = { tonumber(u), tonumber(t), tonumber(q) }
      for k = 1, 3 do if r[k] ~= 0 then redis.call('HINCRBY', h, RES[k], s(-r[k])) end end
      redis.call('HDEL', h, 'r:' .. m)
    end
    redis.call('ZREM', z, m)
  end
end

local function collect(status, failed, unit)
  local out = { status, failed, unit }
  for i = 1, n do
    local st = state(KEYS[1 + (i - 1) * 3 + 1])
    for j = 1, 6 do out[#out + 1] = st[j] end
  end
  return out
end

if redis.call('EXISTS', KEYS[1]) == 1 then return collect(-1, -1, -1) end

for i = 1, n do purge(KEYS[1 + (i - 1) * 3 + 1], KEYS[1 + (i - 1) * 3 + 2]) end

local failed, unit = -1, -1
for i = 1, n do
  local b = 8 + (i - 1) * 6
  if ARGV[b + 1] == '1' and failed < 0 then
    local st = state(KEYS[1 + (i - 1) * 3 + 1])
    for u = 1, 3 do
      local lim = tonumber(ARGV[b + 1 + u])
      if failed < 0 and lim >= 0 and amt[u] > 0 and st[u] + st[u + 3] + amt[u] > lim then
        failed, unit = i - 1, u - 1
      end
    end
  end
end
if failed >= 0 and enforce then return collect(0, failed, unit) end

for i = 1, n do
  local b = 8 + (i - 1) * 6
  local h, z, idx = KEYS[1 + (i - 1) * 3 + 1], KEYS[1 + (i - 1) * 3 + 2], KEYS[1 + (i - 1) * 3 + 3]
  local prev = redis.call('HGET', h, 'r:' .. id)
  local r = { 0, 0, 0 }
  if prev then
    local u, t, q = string.match(prev, '^(%-?%d+) (%-?%d+) (%-?%d+)$')
    r = { tonumber(u), tonumber(t), tonumber(q) }
  end
  for k = 1, 3 do
    r[k] = r[k] + amt[k]
    if amt[k] ~= 0 then redis.call('HINCRBY', h, RES[k], s(amt[k])) end
  end
  redis.call('HSET', h, 'r:' .. id, s(r[1]) .. ' ' .. s(r[2]) .. ' ' .. s(r[3]))
  redis.call('ZADD', z, resExp, id)
  redis.call('SADD', idx, ARGV[b + 6])
  redis.call('PEXPIREAT', h, ARGV[b + 5])
  redis.call('PEXPIREAT', z, ARGV[b + 5])
  redis.call('PEXPIREAT', idx, ARGV[b + 5])
end
if failed >= 0 then return collect(2, failed, unit) end
return collect(1, -1, -1)
