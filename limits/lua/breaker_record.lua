-- Count a connection's success or failure for a host's circuit breaker.
-- KEYS[1] breaker hash, KEYS[2] the host's connection leases zset;
-- ARGV: 1 ok ('1'/'0'), 2 now, 3 threshold, 4 open_for (ms), 5 the placeholder lease of
-- the attempt that ended ('' if none), 6 when its connection is closed at the latest (ms)
-- Returns 1 if the breaker is open afterwards.
-- One script: concurrent failures from several workers must add up exactly
-- and open the breaker once.
-- A restore (restore.lua) held a slot for this attempt while it was in progress:
-- it ended, so its connection is open at most for its idle time now (never longer).
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[2], 'XX', 'LT', ARGV[6], ARGV[5]) end
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  return 0
end
local now = tonumber(ARGV[2])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
-- A failed probe (half-open) reopens at once; otherwise after `threshold` in a row.
if (open_until > 0 and now >= open_until) or failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'open_until', string.format('%d', now + tonumber(ARGV[4])), 'failures', 0)
  redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
  return 1
end
if open_until > 0 and now < open_until then return 1 end
return 0
