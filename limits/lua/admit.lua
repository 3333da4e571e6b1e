-- The gate: may this send go, and when? All of a send's limits in one atomic step.
-- KEYS[1] mailbox state hash (ready, paused, reason, next_at)
-- KEYS[2] mailbox reservations zset (member = send key, score = ms)
-- KEYS[3] provider window zset (member = send key + instant, score = reserved instant, ms)
-- KEYS[4] host breaker hash (failures, open_until, probe, probe_until)
-- KEYS[5] host push-back string (ms)
-- KEYS[6] the store's generation (absent: it lost its state; see restore.lua)
-- ARGV: 1 send_key, 2 now, 3 day_start, 4 day_end, 5 cap, 6 keep, 7 provider_limit,
--       8 provider_window, 9 spacing_gap, 10 horizon, 11 probe_ttl   (all ms)
--
-- Atomic so that two workers gating at once can never both take the last
-- slot of a mailbox's day, of a provider's minute, or the breaker's probe.
local key, now = ARGV[1], tonumber(ARGV[2])
local function num(v) return tonumber(v) or 0 end

-- The generation names the server that wrote it (token:run_id). A server restarted from
-- an older snapshot, or a replica promoted in a failover, runs under another run id and
-- may lack the last writes: its state is not trusted until restored (decision 0029).
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local function trusted(generation)
  return generation and string.sub(generation, -#run_id) == run_id and generation or false
end
local generation = trusted(redis.call('GET', KEYS[6]))
if not generation then return {'restore', ARGV[2], ''} end
-- A mailbox is ready in one generation: after a restore it is rebuilt from the ledger.
if redis.call('HGET', KEYS[1], 'ready') ~= generation then return {'rebuild', ARGV[2], ''} end
if redis.call('HGET', KEYS[1], 'paused') == '1' then
  return {'wait', ARGV[2], 'mailbox paused: ' .. (redis.call('HGET', KEYS[1], 'reason') or '')}
end

-- Circuit breaker: open -> wait; half-open -> exactly one probe at a time.
local probe = false
local open_until = num(redis.call('HGET', KEYS[4], 'open_until'))
if open_until > 0 then
  if now < open_until then return {'wait', tostring(open_until), 'circuit open'} end
  local holder = redis.call('HGET', KEYS[4], 'probe')
  local probe_until = num(redis.call('HGET', KEYS[4], 'probe_until'))
  if holder and holder ~= key and probe_until > now then
    return {'wait', tostring(probe_until), 'circuit half-open, probe in flight'}
  end
  probe = true
end

-- Mailbox: a send that already holds a reservation made today keeps it (a retry,
-- or a send returned to the queue): it does not count twice against the cap. A new
-- one, or one whose reservation is from an earlier day (it would be a send of today's
-- on top of today's cap), must fit today's cap and any 24 h, and its reservation moves
-- to now. Either way the transaction keeps the mailbox's spacing and takes its own
-- provider slot: a retry is one more SMTP transaction from this mailbox, in the minute
-- it really goes out (decision 0042).
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[6]))
local held = redis.call('ZSCORE', KEYS[2], key)
if held and tonumber(held) < tonumber(ARGV[3]) then held = false end
local at = now
if not held then
  local cap = tonumber(ARGV[5])
  if redis.call('ZCOUNT', KEYS[2], ARGV[3], '(' .. ARGV[4]) >= cap then
    return {'wait', ARGV[4], 'daily cap reached'}
  end
  local since = string.format('(%d', now - 86400000)
  local rolling = redis.call('ZCOUNT', KEYS[2], since, '+inf')
  if rolling >= cap then
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[2], since, '+inf', 'WITHSCORES', 'LIMIT', rolling - cap, 1)
    return {'wait', string.format('%d', tonumber(oldest[2]) + 86400000), 'rolling 24 h cap reached'}
  end
end
at = math.max(at, num(redis.call('HGET', KEYS[1], 'next_at')))
at = math.max(at, num(redis.call('GET', KEYS[5])))

-- Provider: no window of provider_window ms may hold more than the limit,
-- and sends are paced window/limit apart rather than sent in bursts (what
-- providers like, and what keeps the window exact when a send leaves a
-- little after its slot). Reservations are appended in time order, so the
-- last one and the limit-th most recent one decide (limits/policy.py provider_slot).
local window, limit = tonumber(ARGV[8]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[3])
if n > 0 then
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  at = math.max(at, tonumber(last[2]) + math.floor(window / limit))
end
if n >= limit then
  local kth = redis.call('ZRANGE', KEYS[3], n - limit, n - limit, 'WITHSCORES')
  at = math.max(at, tonumber(kth[2]) + window)
end
if at - now > tonumber(ARGV[10]) then
  return {'wait', string.format('%d', at), 'no slot within the reservation horizon'}
end

-- The reservation names the store's generation: a send whose slot was granted before
-- the store lost its state is refused when it comes to use it (lease_acquire.lua).
local reservation = key .. '@' .. string.format('%d', at) .. '#' .. generation
redis.call('ZADD', KEYS[3], at, reservation)
redis.call('PEXPIRE', KEYS[3], window + tonumber(ARGV[10]) + 60000)
if not held then
  redis.call('ZADD', KEYS[2], now, key)
end
redis.call('HSET', KEYS[1], 'next_at', string.format('%d', at + tonumber(ARGV[9])))
if probe then
  redis.call('HSET', KEYS[4], 'probe', key, 'probe_until', string.format('%d', at + tonumber(ARGV[11])))
end
return {'go', string.format('%d', at), probe and 'probe' or '', reservation}
