-- Budget settlement: the reservation of one request is replaced by what it actually used, once.
-- KEYS[1] settle marker; then per counter i: hash, reservations zset.
-- ARGV: id, marker TTL (ms), n, actual usd/tokens/requests, then per counter: key expiry (ms).
-- Returns {1, spent/reserved x3 per counter}, or {-1} when the id was settled already.
local id = ARGV[1]
local n = tonumber(ARGV[3])
local act = { tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]) }
local SPENT = { 'su', 'st', 'sq' }
local RES = { 'ru', 'rt', 'rq' }
local function s(x) return string.format('%.0f', x) end

if not redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'NX') then return { -1 } end

local out = { 1 }
for i = 1, n do
  local h, z = KEYS[1 + (i - 1) * 2 + 1], KEYS[1 + (i - 1) * 2 + 2]
  local v = redis.call('HGET', h, 'r:' .. id)
  if v then
    local u, t, q = string.match(v, '^(%-?%d+) (%-?%d+) (%-?%d+)$')
    local r = { tonumber(u), tonumber(t), tonumber(q) }
    for k = 1, 3 do if r[k] ~= 0 then redis.call('HINCRBY', h, RES[k], s(-r[k])) end end
    redis.call('HDEL', h, 'r:' .. id)
  end
  redis.call('ZREM', z, id)
  for k = 1, 3 do if act[k] ~= 0 then redis.call('HINCRBY', h, SPENT[k], s(act[k])) end end
  redis.call('PEXPIREAT', h, ARGV[6 + i])
  local st = redis.call('HMGET', h, 'su', 'st', 'sq', 'ru', 'rt', 'rq')
  for j = 1, 6 do out[#out + 1] = tonumber(st[j]) or 0 end
end
return out
