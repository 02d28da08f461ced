-- tryon's shared budget: every decision, atomically, in one call.
-- The same function as decide.rs (read that for the why), line for line;
-- the shared-budget tests run one suite against both and compare replies.
-- Constants written @LIKE_THIS@ are filled in from decide.rs and
-- rate_limiter.rs before the script is loaded, so they have one home.
--
-- KEYS[1]  the state (a hash)        KEYS[2]  the sharers (a sorted set)
-- ARGV: 1 now in us, or '' for the server's TIME (the client sends a time
--       only in its test mode, behind the `test-util` feature)
--       2 op (join | reserve | throttled)   3 sharer id   4 told (calls/s, 0 none)
--       5 route (0 submit, 1 read, 2 upload)
--       6-8 successes per route   9 of them waited
--       10 ticket epoch (-1 none)  11 Retry-After in us (-1 none)
-- Returns strings: wait_us, ticket_epoch, waited, epoch, sharers, rate,
-- told, refused, learned_ahead_us, told_ahead_us.

if redis.replicate_commands then
  pcall(redis.replicate_commands)
end

local W = @WINDOW_US@
local TTL = @SHARER_TTL_US@
local MAX_SHARERS = @MAX_SHARERS@
local HORIZON = @HORIZON_US@
local MAX_REPORT = @MAX_REPORT@
local MAX_GROWTH_STEPS = @MAX_GROWTH_STEPS@
local MAX_RETRY_AFTER = @MAX_RETRY_AFTER_US@
local BACKOFF = @BACKOFF@
local GROWTH = @GROWTH@
local SLOW_START_GROWTH = @SLOW_START_GROWTH@
local MIN_RATE = @MIN_RATE@
local MAX_RATE = @MAX_RATE@
local VERSION = @VERSION@
local PROBE_RATE = @PROBE_RATE@
local MAX_PROBE_DOUBLINGS = @MAX_PROBE_DOUBLINGS@
local EXPIRE_MS = 3600000

local function refuse(msg)
  return redis.error_reply('tryon-budget: ' .. KEYS[1] .. ' ' .. msg ..
    ' (refused, not trusted: delete the key or use another budget name)')
end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

local function num(arg, name)
  local x = tonumber(arg)
  if x == nil or not finite(x) then
    error('tryon-budget: argument ' .. name .. ' is not a number')
  end
  return x
end

-- The keys must be ours, or not exist yet.
local t1 = redis.call('TYPE', KEYS[1])['ok']
if t1 ~= 'none' and t1 ~= 'hash' then
  return refuse('holds a ' .. t1 .. ', not a tryon budget')
end
local t2 = redis.call('TYPE', KEYS[2])['ok']
if t2 ~= 'none' and t2 ~= 'zset' then
  return redis.error_reply('tryon-budget: ' .. KEYS[2] .. ' holds a ' .. t2 ..
    ', not a list of sharers (refused, not trusted: delete the key or use another budget name)')
end

local now
if ARGV[1] ~= '' then
  now = num(ARGV[1], 'now')
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1e6 + tonumber(t[2])
end
local op = ARGV[2]
local sharer = ARGV[3]
local told_arg = num(ARGV[4], 'told')
local route = math.min(math.max(math.floor(num(ARGV[5], 'route')), 0), 2)
local report = {num(ARGV[6], 's0'), num(ARGV[7], 's1'), num(ARGV[8], 's2')}
local waited_n = num(ARGV[9], 'waited')
local ticket = num(ARGV[10], 'epoch')
local retry_after = num(ARGV[11], 'retry_after')
if string.len(sharer) == 0 or string.len(sharer) > 64 then
  error('tryon-budget: argument sharer must be 1 to 64 bytes')
end

-- Read and check the state: every field, by name.
local FIELDS = {'told', 'rate', 'tat_l', 'tat_c', 'kept', 'resume', 'quiet', 'epoch',
  'slow', 'refused', 'win', 'c0', 'c1', 'c2', 'p0', 'p1', 'p2', 'first', 'probe', 'tat_p'}
local s = {}
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then
  for _, f in ipairs(FIELDS) do s[f] = 0 end
  s.first = -1
  s.probe = -1
else
  local h = {}
  for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
  if h.v == nil then return refuse('has no version field v') end
  if tonumber(h.v) ~= VERSION then
    return refuse('is version ' .. tostring(h.v) .. ' (this client reads version ' .. VERSION .. ')')
  end
  h.v = nil
  for _, f in ipairs(FIELDS) do
    if h[f] == nil then return refuse('has no field ' .. f) end
    local x = tonumber(h[f])
    if x == nil or not finite(x) then return refuse('field ' .. f .. ' is not a number') end
    if f == 'first' or f == 'probe' then
      if x < -1 then return refuse('field ' .. f .. ' is ' .. h[f] .. ', not a time or -1') end
    elseif x < 0 then
      return refuse('field ' .. f .. ' is ' .. h[f] .. ', not a finite number >= 0')
    end
    s[f] = x
    h[f] = nil
  end
  local extra = next(h)
  if extra ~= nil then return refuse('has a field ' .. extra .. ' this client does not know') end
  if s.told > MAX_RATE or s.rate > MAX_RATE then return refuse('field told or rate is above ' .. MAX_RATE) end
  if s.epoch % 1 ~= 0 or s.win % 1 ~= 0 then return refuse('fields epoch and win must be whole numbers') end
  if s.slow ~= 0 and s.slow ~= 1 then return refuse('field slow is not 0 or 1') end
  if s.refused % 1 ~= 0 or s.refused > 7 then return refuse('field refused is not a whole number 0..=7') end
end
local cur = {s.c0, s.c1, s.c2}
local prev = {s.p0, s.p1, s.p2}

local function is_refused(r)
  -- bit r of a whole number below 8
  return math.floor(s.refused / (2 ^ r)) % 2 == 1
end

local function roll()
  local idx = math.floor(now / W)
  if idx > s.win then
    if idx == s.win + 1 then
      prev = {cur[1], cur[2], cur[3]}
    else
      prev = {0, 0, 0}
    end
    cur = {0, 0, 0}
    s.win = idx
  end
end

local function measured()
  roll()
  local nc = 0
  local np = 0
  for r = 0, 2 do
    if is_refused(r) then
      nc = nc + cur[r + 1]
      np = np + prev[r + 1]
    end
  end
  if s.first < 0 then return 0 end
  local since = now - s.first
  local count, span
  if since <= W then
    count = nc + np
    span = math.max(since, 1e6)
  else
    local frac = (now - s.win * W) / W
    count = np * (1 - frac) + nc
    span = W
  end
  return count / span * 1e6
end

-- clamp: times further ahead than the horizon are taken as now
local limit = now + HORIZON
for _, f in ipairs({'tat_l', 'tat_c', 'kept', 'resume', 'quiet', 'tat_p'}) do
  if s[f] > limit then s[f] = now end
end
if s.first > now then s.first = now end
if s.probe > now then s.probe = now end
if s.win * W > limit then
  s.win = 0
  cur = {0, 0, 0}
  prev = {0, 0, 0}
end

-- register: heard of now; forget the unheard; keep the newest MAX_SHARERS
redis.call('ZADD', KEYS[2], now, sharer)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - TTL)
local n = redis.call('ZCARD', KEYS[2])
if n > MAX_SHARERS then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - MAX_SHARERS - 1)
  n = MAX_SHARERS
end

if told_arg > 0 then s.told = math.min(told_arg, MAX_RATE) end
if s.told > 0 and s.rate > s.told then s.rate = s.told end

-- apply_report
roll()
local any = false
for r = 1, 3 do
  local k = report[r]
  if k > 0 then
    any = true
    cur[r] = cur[r] + math.min(k, MAX_REPORT)
  end
end
if any and s.first < 0 then s.first = now end
if s.rate > 0 and waited_n > 0 then
  local factor
  if s.slow > 0 then factor = SLOW_START_GROWTH else factor = 1 + 1 / GROWTH end
  for _ = 1, math.min(waited_n, MAX_GROWTH_STEPS) do
    s.rate = s.rate * factor
    if s.told > 0 and s.rate > s.told then s.rate = s.told end
  end
end

local wait, ticket_epoch, waited = 0, -1, 0
if op == 'reserve' and s.rate <= 0 and s.told <= 0 then
  -- no budget known yet: the discovery pace
  if s.probe < 0 then s.probe = now end
  local doublings = math.min(math.floor((now - s.probe) / 1e6), MAX_PROBE_DOUBLINGS)
  local pace = PROBE_RATE * 2 ^ doublings
  local start = math.max(now, s.tat_p)
  s.tat_p = start + 1e6 / pace
  wait = start - now
  ticket_epoch = s.epoch
elseif op == 'reserve' then
  local learned = s.rate > 0 and is_refused(route)
  local start = now
  if learned then
    start = math.max(math.max(start, s.resume), s.tat_l)
    if start > now then waited = 1 end
    s.tat_l = start + 1e6 / s.rate
  end
  if s.told > 0 then
    local shared = math.max(start, s.tat_c)
    if learned and shared > start then
      s.tat_l = s.tat_l + (shared - start)
    end
    start = shared
    s.tat_c = start + 1e6 / s.told
    if not learned then s.kept = math.max(s.kept, s.tat_c) end
  end
  if learned then ticket_epoch = s.epoch end
  wait = start - now
elseif op == 'throttled' then
  local joins = not is_refused(route)
  if joins or not (ticket ~= s.epoch or now < s.quiet) then
    if joins then s.refused = s.refused + 2 ^ route end
    local hold = -1
    if retry_after >= 0 then hold = math.min(retry_after, MAX_RETRY_AFTER) end
    local new
    if s.rate > 0 and not joins then
      s.slow = 0
      new = s.rate * BACKOFF
    else
      local h = math.max(hold, 0)
      s.resume = math.max(s.resume, now + h)
      s.slow = 1
      local floor = 1e6 / math.max(h, 1e6)
      new = math.max(measured(), floor) * BACKOFF
    end
    new = math.max(new, MIN_RATE)
    if s.told > 0 then s.rate = math.min(new, s.told) else s.rate = new end
    s.epoch = s.epoch + 1
    if hold > 1e6 then
      s.quiet = now + hold
      s.resume = math.max(s.resume, s.quiet)
    end
    s.tat_l = math.max(now, s.resume)
    s.tat_c = math.min(s.tat_c, math.max(now, s.kept))
  end
elseif op ~= 'join' then
  error('tryon-budget: unknown op ' .. op)
end

local function f(x) return string.format('%.17g', x) end
redis.call('HSET', KEYS[1], 'v', VERSION,
  'told', f(s.told), 'rate', f(s.rate), 'tat_l', f(s.tat_l), 'tat_c', f(s.tat_c),
  'kept', f(s.kept), 'resume', f(s.resume), 'quiet', f(s.quiet), 'epoch', f(s.epoch),
  'slow', f(s.slow), 'refused', f(s.refused), 'win', f(s.win),
  'c0', f(cur[1]), 'c1', f(cur[2]), 'c2', f(cur[3]),
  'p0', f(prev[1]), 'p1', f(prev[2]), 'p2', f(prev[3]), 'first', f(s.first),
  'probe', f(s.probe), 'tat_p', f(s.tat_p))
redis.call('PEXPIRE', KEYS[1], EXPIRE_MS)
redis.call('PEXPIRE', KEYS[2], EXPIRE_MS)

return {f(wait), f(ticket_epoch), f(waited), f(s.epoch), f(n), f(s.rate), f(s.told),
  f(s.refused), f(s.tat_l - now), f(s.tat_c - now)}
