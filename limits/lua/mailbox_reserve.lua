-- Reserve one send in a mailbox's daily budget, or say why not.
-- KEYS[1]  mailbox state hash   (ready, paused, reason)
-- KEYS[2]  reservations zset    (member = send key, score = reserved at, ms)
-- ARGV     send_key, now_ms, day_start_ms, day_end_ms, cap, keep_ms
--
-- One script so that check-and-add is atomic: two workers gating two sends of
-- the same mailbox at once can never both take the last slot of the day.
-- A send reserved earlier (a retry, or a send returned to the queue) finds
-- its own member and goes again without taking a second slot.
if redis.call('HGET', KEYS[1], 'ready') ~= '1' then
  return {'rebuild', 0}
end
if redis.call('HGET', KEYS[1], 'paused') == '1' then
  return {'paused', 0}
end
local now = tonumber(ARGV[2])
local day = 86400000
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[6]))
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'go', 0}
end
local cap = tonumber(ARGV[5])
local today = redis.call('ZCOUNT', KEYS[2], ARGV[3], '(' .. ARGV[4])
if today >= cap then
  return {'day_full', ARGV[4]}
end
-- Never more than the cap in any rolling 24 h either (a day boundary must not
-- allow 2 x cap within a few hours).
local since = string.format('(%d', now - day)
local rolling = redis.call('ZCOUNT', KEYS[2], since, '+inf')
if rolling >= cap then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[2], since, '+inf', 'WITHSCORES',
                            'LIMIT', rolling - cap, 1)
  return {'rolling_full', string.format('%d', tonumber(oldest[2]) + day)}
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {'go', 1}
