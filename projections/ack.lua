-- Acknowledge every pending entry of a group up to an id, without sending each id.
-- KEYS[1] stream; ARGV[1] group, ARGV[2] last id, ARGV[3] at most this many.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', ARGV[2], tonumber(ARGV[3]))
if #pending == 0 then return 0 end
local ids = {}
for i, entry in ipairs(pending) do ids[i] = entry[1] end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
