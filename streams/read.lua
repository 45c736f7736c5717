-- Read aggregates in one round trip: for each index list, its events from the partition log.
-- KEYS[1] partition log, KEYS[2..] aggregate lists. ARGV[1] the first version to read (1-based).
-- Returns, per aggregate, a flat list {log id, fields, log id, fields, ...}; a version whose
-- event is in the archive (its element is the marker 'a') comes as {'a', {}}.
local out = {}
local first = tonumber(ARGV[1]) - 1
for i = 2, #KEYS do
  local events = {}
  for _, id in ipairs(redis.call('LRANGE', KEYS[i], first, -1)) do
    if id == 'a' then
      events[#events + 1] = id
      events[#events + 1] = {}
    else
      local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
      events[#events + 1] = entry[1]
      events[#events + 1] = entry[2]
    end
  end
  out[#out + 1] = events
end
return out
