-- A dispatch is over (the job finished, was re-queued, or could not be claimed): acknowledge
-- and delete its message, and free its place in the limits, once.
-- KEYS: 1 stream, 2 active, 3 counts. ARGV: 1 job id, 2 message id, 3 group.
redis.call('XACK', KEYS[1], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
local record = cjson.decode(raw)
if record.msg ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'all', -1)
if record.repo ~= '' then redis.call('HINCRBY', KEYS[3], 'repo:' .. record.repo, -1) end
redis.call('HINCRBY', KEYS[3], 'project:' .. record.project, -1)
return 1
