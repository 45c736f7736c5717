-- Apply one batch of a projection to one partition, atomically, if the caller still holds it.
-- KEYS: 1 lease, 2 generation, 3 partition log.
-- ARGV: 1 lease holder ('' = no fence: a rebuild's private generation), 2 generation,
--   3 group, 4 last entry id of the batch, 5 entries in the batch, then the writes:
--   6 number of commands, then per command its argument count and arguments.
-- Every key a command names is in the partition's hash slot (the read model keys carry the
-- partition tag), so this is one slot on a cluster too.
-- Returns 1 when applied and acknowledged, 0 when the fence refused (nothing written).
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  if (redis.call('GET', KEYS[2]) or '1') ~= ARGV[2] then return 0 end
end
local at = 7
for _ = 1, tonumber(ARGV[6]) do
  local n = tonumber(ARGV[at])
  redis.call(unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
-- Acknowledge every pending entry up to the batch's last one (the ids stay server-side).
local pending = redis.call('XPENDING', KEYS[3], ARGV[3], '-', ARGV[4], tonumber(ARGV[5]))
if #pending > 0 then
  local ids = {}
  for i, entry in ipairs(pending) do ids[i] = entry[1] end
  redis.call('XACK', KEYS[3], ARGV[3], unpack(ids))
end
return 1
