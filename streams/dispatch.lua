-- Put one job on its signature's dispatch stream, unless that would break a rule.
-- KEYS: 1 stream, 2 active (hash job -> dispatch record), 3 counts (hash), 4 dispatched
--   (hash job -> version dispatched at), 5 signatures (set), 6 leader.
-- ARGV: 1 job id, 2 version, 3 signature, 4 repository ('' for none), 5 project,
--   6 max running (0 = no limit), 7 max per repository, 8 max per project, 9 leader token
--   ('' = no check), 10 priority, 11 created_at.
-- Returns {'ok', message id} or {reason, detail}.
local job, version = ARGV[1], tonumber(ARGV[2])
if ARGV[9] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[9] then return {'not_leader', ''} end
if redis.call('HEXISTS', KEYS[2], job) == 1 then return {'active', ''} end
local seen = redis.call('HGET', KEYS[4], job)
if seen and tonumber(seen) >= version then return {'dispatched', seen} end
local function over(field, limit)
  limit = tonumber(limit)
  return limit > 0 and tonumber(redis.call('HGET', KEYS[3], field) or '0') >= limit
end
if over('all', ARGV[6]) then return {'limit', 'all'} end
if ARGV[4] ~= '' and over('repo:' .. ARGV[4], ARGV[7]) then return {'limit', 'repository'} end
if over('project:' .. ARGV[5], ARGV[8]) then return {'limit', 'project'} end
local id = redis.call('XADD', KEYS[1], '*', 'job', job, 'version', ARGV[2],
  'priority', ARGV[10], 'created', ARGV[11])
redis.call('HSET', KEYS[2], job, cjson.encode({sig = ARGV[3], msg = id, repo = ARGV[4],
  project = ARGV[5]}))
redis.call('HINCRBY', KEYS[3], 'all', 1)
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[3], 'repo:' .. ARGV[4], 1) end
redis.call('HINCRBY', KEYS[3], 'project:' .. ARGV[5], 1)
redis.call('HSET', KEYS[4], job, ARGV[2])
redis.call('SADD', KEYS[5], ARGV[3])
return {'ok', id}
