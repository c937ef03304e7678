-- One GCRA decision over all KEYS, all or nothing (verifyd.Limiter).
-- ARGV[1]: now in µs, or "" to read Redis TIME (production: one clock for
-- every node). ARGV[2i], ARGV[2i+1]: interval T and period P of KEYS[i], µs.
-- A key holds its TAT (theoretical arrival time, µs since the epoch) and
-- expires when the TAT passes (a key past its TAT is fully refilled).
-- Returns {0, 0} when allowed (every key consumed one token), else
-- {i, wait}: KEYS[i] is the first that refused, wait (µs) is the longest
-- wait among the refusing keys; nothing was written.
if redis.replicate_commands then
  redis.replicate_commands() -- Redis < 5: replicate effects, not the script (TIME)
end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tats = {}
local refused, wait = 0, 0
for i = 1, #KEYS do
  local T = tonumber(ARGV[2 * i])
  local P = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then
    tat = now
  end
  tat = tat + T
  tats[i] = tat
  local w = tat - P - now
  if w > 0 then
    if refused == 0 then
      refused = i
    end
    if w > wait then
      wait = w
    end
  end
end
if refused > 0 then
  return {refused, wait}
end
-- A key lives until its TAT is in the past (TTL in ms, rounded up). A
-- caller's clock (tests) does not run with Redis's expiry clock: then keys
-- get a minute more, so that a slow test step cannot expire them early.
local slack = 0
if ARGV[1] ~= '' then
  slack = 60000
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + slack)
end
return {0, 0}
