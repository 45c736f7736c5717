-- Put jobs on their signatures' dispatch streams, each unless that would break a rule.
-- KEYS: 1 active (hash job -> dispatch record), 2 counts (hash), 3 signatures (set), 4 leader.
-- ARGV: 1 max running (0 = no limit), 2 max per repository, 3 max per project, 4 leader token
--   ('' = no check), 5 number of jobs, then per job 9 values: stream key (in the dispatch
--   slot), job id, version, signature, repository ('' for none), project, priority, created,
--   the project's own limit (0 = the max per project).
-- Returns per job {'ok', message id} or {reason, detail}; a lost lead stops the batch.
local function over(field, limit)
  limit = tonumber(limit)
  return limit > 0 and tonumber(redis.call('HGET', KEYS[2], field) or '0') >= limit
end
local results = {}
for i = 1, tonumber(ARGV[5]) do
  local at = 6 + (i - 1) * 9
  local stream, job, sig = ARGV[at], ARGV[at + 1], ARGV[at + 3]
  local repo, project = ARGV[at + 4], ARGV[at + 5]
  if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[4] then
    results[i] = {'not_leader', ''}
  elseif redis.call('HEXISTS', KEYS[1], job) == 1 then
    results[i] = {'active', ''}
  elseif over('all', ARGV[1]) then
    results[i] = {'limit', 'all'}
  elseif repo ~= '' and over('repo:' .. repo, ARGV[2]) then
    results[i] = {'limit', 'repository'}
  elseif over('project:' .. project, tonumber(ARGV[at + 8]) > 0 and ARGV[at + 8] or ARGV[3]) then
    results[i] = {'limit', 'project'}
  else
    local id = redis.call('XADD', stream, '*', 'job', job, 'version', ARGV[at + 2],
      'priority', ARGV[at + 6], 'created', ARGV[at + 7])
    redis.call('HSET', KEYS[1], job, cjson.encode({sig = sig, msg = id, repo = repo,
      project = project}))
    redis.call('HINCRBY', KEYS[2], 'all', 1)
    if repo ~= '' then redis.call('HINCRBY', KEYS[2], 'repo:' .. repo, 1) end
    redis.call('HINCRBY', KEYS[2], 'project:' .. project, 1)
    redis.call('SADD', KEYS[3], sig)
    results[i] = {'ok', id}
  end
end
return results
