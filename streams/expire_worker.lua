-- Remove a worker's record if it is still the one read (a worker that came back meanwhile
-- has written a newer one, which stays).
-- KEYS: 1 the workers hash. ARGV: 1 worker id, 2 its last_seen as read.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw).last_seen == tonumber(ARGV[2]) then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
