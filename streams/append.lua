-- Atomic multi-aggregate append with expected versions, guards and idempotency.
-- An event is written once, to the partition log; an aggregate's key is a list whose
-- element i is the log entry id of its version i (so its length is its version).
-- KEYS[1] partition log, KEYS[2] command record, KEYS[3..] aggregate lists then guard lists.
-- ARGV: has_command, command_ttl_s, n_streams, n_guards, then per aggregate:
--   expected_version, n_events, then 10 envelope values per event
--   (id, type, agg, ver, ts, actor, corr, cause, schema, data),
-- then per guard: expected_version.
-- Returns {"ok", position, v1, v2, ...} | {"dup", record} | {"conflict", key, expected, actual}.
local fields = {'id', 'type', 'agg', 'ver', 'ts', 'actor', 'corr', 'cause', 'schema', 'data'}
local has_command = ARGV[1] == '1'
if has_command then
  local record = redis.call('GET', KEYS[2])
  if record then return {'dup', record} end
end
local n_streams = tonumber(ARGV[3])
local n_guards = tonumber(ARGV[4])

-- Check every version before writing anything: all or nothing.
local cursor = 5
for i = 1, n_streams do
  local expected = tonumber(ARGV[cursor])
  local n_events = tonumber(ARGV[cursor + 1])
  if expected >= 0 then
    local actual = redis.call('LLEN', KEYS[2 + i])
    if actual ~= expected then return {'conflict', KEYS[2 + i], expected, actual} end
  end
  cursor = cursor + 2 + n_events * 10
end
local guard_cursor = cursor
for g = 1, n_guards do
  local key = KEYS[2 + n_streams + g]
  local expected = tonumber(ARGV[guard_cursor + g - 1])
  local actual = redis.call('LLEN', key)
  if actual ~= expected then return {'conflict', key, expected, actual} end
end

local result = {'ok', ''}
cursor = 5
for i = 1, n_streams do
  local key = KEYS[2 + i]
  local n_events = tonumber(ARGV[cursor + 1])
  local version = redis.call('LLEN', key)
  local at = cursor + 2
  local ids = {}
  for e = 1, n_events do
    local entry = {}
    for f = 1, 10 do
      entry[2 * f - 1] = fields[f]
      entry[2 * f] = ARGV[at + f - 1]
    end
    version = version + 1
    entry[8] = tostring(version)
    ids[e] = redis.call('XADD', KEYS[1], '*', unpack(entry))
    at = at + 10
  end
  redis.call('RPUSH', key, unpack(ids))
  result[2] = ids[n_events]
  result[#result + 1] = version
  cursor = at
end
if has_command then
  redis.call('SET', KEYS[2], cjson.encode(result), 'EX', tonumber(ARGV[2]))
end
return result
