-- Rebuild a mailbox's state after Redis lost it, from the ledger's view.
-- KEYS[1]  mailbox state hash, KEYS[2] reservations zset, KEYS[3] the store's generation
-- ARGV     paused ('1'/'0'), reason, then pairs of (score_ms, send_key)
--
-- HSETNX for the pause flag: a pause or resume written between our reading of
-- PostgreSQL and this script is newer than what we read, so it wins.
local generation = redis.call('GET', KEYS[3])
if not generation then return 0 end  -- not restored yet: the gate restores first
local ready = redis.call('HGET', KEYS[1], 'ready')
if ready == generation then
  return 0
end
if ready then
  -- Ready in an older generation: what it holds may be a stale snapshot's. Start
  -- over from the ledger, as after a loss.
  redis.call('DEL', KEYS[1], KEYS[2])
end
redis.call('HSETNX', KEYS[1], 'paused', ARGV[1])
redis.call('HSETNX', KEYS[1], 'reason', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[2], 'NX', ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'ready', generation)
return 1
