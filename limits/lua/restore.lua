-- Restore what the store forgot when it lost its state, then trust it again.
-- KEYS[1] generation (present = trusted); then n provider window zsets, then m host
-- connection lease zsets, then k host push-back strings.
-- ARGV: 1 generation token, 2 now, 3 hold_until, 4 provider window keep (ms), 5 n, 6 m,
--       7 k, then per provider window and per lease zset: count, then (score, member) pairs.
--
-- Atomic and idempotent: workers that found the loss at once all read the ledger,
-- the first to get here restores, the others change nothing. Until the generation
-- key is back, admit answers "restore" and no lease is taken, so nothing is let
-- through on a store that has forgotten what it counted.
-- The generation names the server that wrote it (token:run_id). A server restarted from
-- an older snapshot, or a replica promoted in a failover, runs under another run id and
-- may lack the last writes: its state is not trusted until restored (decision 0029).
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local function trusted(generation)
  return generation and string.sub(generation, -#run_id) == run_id and generation or false
end
if trusted(redis.call('GET', KEYS[1])) then return 0 end
local now, hold_until = tonumber(ARGV[2]), tonumber(ARGV[3])
local n, m, k = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
local function put(key, keep)
  local count = tonumber(ARGV[i]); i = i + 1
  local last = 0
  for _ = 1, count do
    redis.call('ZADD', key, 'NX', ARGV[i], ARGV[i + 1])
    last = math.max(last, tonumber(ARGV[i]))
    i = i + 2
  end
  -- Expiry only collects garbage, relative so it never depends on clocks agreeing.
  if count > 0 then redis.call('PEXPIRE', key, math.max(last + keep - now, 0) + 60000) end
end
for p = 1, n do put(KEYS[1 + p], tonumber(ARGV[4])) end
for h = 1, m do put(KEYS[1 + n + h], 0) end
for h = 1, k do  -- as push_back.lua: never shortens a later push-back
  local key = KEYS[1 + n + m + h]
  if tonumber(redis.call('GET', key) or '0') < hold_until then
    redis.call('SET', key, ARGV[3], 'PX', 86400000)
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. run_id)
return 1
