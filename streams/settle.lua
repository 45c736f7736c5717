-- Dispatches that are over (the job finished, was re-queued, or could not be claimed):
-- acknowledge and delete each message, and free its place in the limits, once.
-- KEYS: 1 active, 2 counts, then the stream of each message.
-- ARGV: 1 group, then per message: job id, message id. Returns how many places were freed.
local freed = 0
for i = 3, #KEYS do
  local job, msg = ARGV[(i - 3) * 2 + 2], ARGV[(i - 3) * 2 + 3]
  redis.call('XACK', KEYS[i], ARGV[1], msg)
  redis.call('XDEL', KEYS[i], msg)
  local raw = redis.call('HGET', KEYS[1], job)
  if raw then
    local record = cjson.decode(raw)
    if record.msg == msg then
      redis.call('HDEL', KEYS[1], job)
      redis.call('HINCRBY', KEYS[2], 'all', -1)
      if record.repo ~= '' then redis.call('HINCRBY', KEYS[2], 'repo:' .. record.repo, -1) end
      redis.call('HINCRBY', KEYS[2], 'project:' .. record.project, -1)
      freed = freed + 1
    end
  end
end
return freed
