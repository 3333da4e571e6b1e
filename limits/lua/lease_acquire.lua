-- Take, or renew, one of `limit` concurrent leases of a scope (a host's
-- connections, a workspace's sends in flight).
-- KEYS[1] leases zset (member = lease id, score = expiry ms)
-- KEYS[2] the store's generation: absent, the store lost its state and no lease is
--         taken until it is restored (a connection opened before may still be open)
-- ARGV: 1 lease_id, 2 now, 3 expires_at, 4 limit, 5 the generation a send's slot was
--       granted in ('' if none). Returns 1 if held.
-- Check and add in one script: two workers can never take the last slot twice.
-- Leases expire by their score, so a worker that dies never keeps a slot.
-- The generation names the server that wrote it (token:run_id). A server restarted from
-- an older snapshot, or a replica promoted in a failover, runs under another run id and
-- may lack the last writes: its state is not trusted until restored (decision 0029).
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local function trusted(generation)
  return generation and string.sub(generation, -#run_id) == run_id and generation or false
end
local generation = trusted(redis.call('GET', KEYS[2]))
if not generation or (ARGV[5] ~= '' and ARGV[5] ~= generation) then return 0 end
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
-- Key expiry only collects garbage; relative, so it never depends on clocks agreeing.
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) - now + 60000)
return 1
