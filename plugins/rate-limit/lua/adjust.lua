-- Moves a GCRA key's theoretical arrival time by delta units (negative = refund), never below
-- idle: the token correction after a request completes. Same clock as admit.lua.
-- KEYS[1]: the state key. ARGV[1]: emission interval T (ms). ARGV[2]: delta (units).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1700000000) * 1000 + tonumber(t[2]) / 1000
local v = redis.call('GET', KEYS[1])
local tat = v and tonumber(v) or 0
if tat < now then tat = now end
local nxt = tat + tonumber(ARGV[2]) * tonumber(ARGV[1])
if nxt <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.5f', nxt), 'PX', math.ceil(nxt - now) + 1)
end
return 1
