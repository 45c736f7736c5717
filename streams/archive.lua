-- Move aggregates' events out of the partition log once they are safe in the archive: each
-- aggregate's archived index elements become the marker (so the list keeps its length, the
-- aggregate's version) and their log entries are deleted. Only if the index still holds exactly
-- the ids that were archived, after markers only, and every consumer group of the log has been
-- delivered and has acknowledged them (checked here, so a group made meanwhile, a rebuild's,
-- is seen); an aggregate that fails either is left as it is.
-- KEYS[1] partition log, KEYS[2..] aggregate lists.
-- ARGV[1] the marker, then per aggregate: its first archived version, the number of ids, the ids.
-- Returns, per aggregate: 1 moved, 0 changed since it was read, 2 not yet applied by a group.
local marker = ARGV[1]

local function key(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function below(a, b) -- a <= b (or, strictly, a < b) for stream ids
  local am, as = key(a)
  local bm, bs = key(b)
  return am < bm or (am == bm and as <= bs), am < bm or (am == bm and as < bs)
end

-- Each group's last delivered id and its oldest pending one (false when none is pending).
local groups = {}
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local g = {}
    for f = 1, #info, 2 do g[info[f]] = info[f + 1] end
    local oldest = false
    if tonumber(g['pending']) > 0 then oldest = redis.call('XPENDING', KEYS[1], g['name'])[2] end
    groups[#groups + 1] = {g['last-delivered-id'], oldest}
  end
end

local function applied(id)
  for _, g in ipairs(groups) do
    local at_or_before = below(id, g[1])
    if not at_or_before then return false end
    if g[2] then
      local _, strictly = below(id, g[2])
      if not strictly then return false end
    end
  end
  return true
end

local at = 2
local moved = {}
for i = 2, #KEYS do
  local first = tonumber(ARGV[at])
  local n = tonumber(ARGV[at + 1])
  local ids = {}
  for k = 1, n do ids[k] = ARGV[at + 1 + k] end
  at = at + 2 + n
  local held = redis.call('LRANGE', KEYS[i], 0, -1)
  local outcome = (#held == first - 1 + n) and 1 or 0
  for v = 1, first - 1 do
    if held[v] ~= marker then outcome = 0 end
  end
  for k = 1, n do
    if outcome == 1 and held[first - 1 + k] ~= ids[k] then outcome = 0 end
  end
  if outcome == 1 and not applied(ids[n]) then outcome = 2 end
  if outcome == 1 then
    -- Every element is a marker now: lay the list again (LSET would be O(length) each).
    redis.call('DEL', KEYS[i])
    local markers = {}
    for k = 1, math.min(#held, 1000) do markers[k] = marker end
    for start = 1, #held, 1000 do
      redis.call('RPUSH', KEYS[i], unpack(markers, 1, math.min(1000, #held - start + 1)))
    end
    for start = 1, n, 1000 do
      redis.call('XDEL', KEYS[1], unpack(ids, start, math.min(n, start + 999)))
    end
  end
  moved[#moved + 1] = outcome
end
return moved
