-- Budget counters as they are, after dropping expired reservations (admin API, downgrade decisions).
-- KEYS per counter i: hash, reservations zset. ARGV: now. Returns spent/reserved x3 per counter.
local now = tonumber(ARGV[1])
local RES = { 'ru', 'rt', 'rq' }
local function s(x) return string.format('%.0f', x) end
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[(i - 1) * 2 + 1], KEYS[(i - 1) * 2 + 2]
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
  local st = redis.call('HMGET', h, 'su', 'st', 'sq', 'ru', 'rt', 'rq')
  for j = 1, 6 do out[#out + 1] = tonumber(st[j]) or 0 end
end
return out
