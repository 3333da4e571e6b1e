-- Move a host's earliest next send to ARGV[1] (ms) unless it is already later.
-- KEYS[1] push-back string. Max, not overwrite: two throttles never shorten each other.
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ms = tonumber(ARGV[1])
if until_ms > current then
  -- The value decides; the day-long expiry only collects garbage.
  redis.call('SET', KEYS[1], ARGV[1], 'PX', 86400000)
end
return 0
