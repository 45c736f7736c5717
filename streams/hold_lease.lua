-- Take a lease if it is free, or renew it if the caller holds it.
-- KEYS: 1 the lease. ARGV: 1 holder, 2 time to live in ms. Returns 1 when held afterwards.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
