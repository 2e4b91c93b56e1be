"""Lua scripts of the interview store: each is one atomic step (state + its events together).

Conventions: scripts return {1, ...} on success and {0, reason} on a refused write, so a refusal
is data, not an exception. Every write re-applies the retention TTL to the interview's keys
(ttl_ms = "0" keeps them). Per-interview keys are named in KEYS; single-node Redis (or one
primary behind Sentinel) is assumed: the global index and lifecycle keys share the scripts.
"""

# KEYS: state, events, lifecycle, index_all, index_status, request_key
# ARGV: id, proto, status, ttl_ms, events_maxlen, lifecycle_maxlen, event_data, request_value ("" = no
#       idempotency key), created_by, request_ttl_ms, team (on the lifecycle entry: WatchEvents filters by it)
CREATE = """
if ARGV[8] ~= '' then
  local prev = redis.call('GET', KEYS[6])
  if prev then return {0, prev} end
  redis.call('SET', KEYS[6], ARGV[8], 'PX', ARGV[10])
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ''} end
local req = ''
if ARGV[8] ~= '' then req = KEYS[6] end
redis.call('HSET', KEYS[1], 'ver', 1, 'proto', ARGV[2], 'status', ARGV[3], 'seq', 0, 'epoch', 0,
           'req', req, 'created_by', ARGV[9], 'owner', '', 'control_cursor', '0-0')
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('ZADD', KEYS[5], 0, ARGV[1])
local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', 'lifecycle', 'data', ARGV[7])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'type', 'lifecycle', 'data', ARGV[7], 'interview_id', ARGV[1],
           'team', ARGV[11])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return {1, eid}
"""

# Compare-and-set of the snapshot plus its events, optionally fenced by the owner's epoch.
# KEYS: state, events, control, lifecycle, index_all, index_old_status, index_new_status, then
#       other interview keys that only get the TTL refreshed
# ARGV: expected_ver, proto, status, ttl_ms, id, events_maxlen, lifecycle_maxlen, epoch ("" = not
#       fenced), n, then n triples (type, data, flags: "c" = also to control, "l" = also to lifecycle),
#       then the interview's team (on lifecycle entries)
COMMIT = """
local cur = redis.call('HGET', KEYS[1], 'ver')
if not cur then return {0, 'missing'} end
if ARGV[8] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[8] then return {0, 'fenced'} end
if cur ~= ARGV[1] then return {0, 'conflict'} end
local ver = tonumber(cur) + 1
redis.call('HSET', KEYS[1], 'ver', ver, 'proto', ARGV[2], 'status', ARGV[3])
if KEYS[6] ~= KEYS[7] then
  redis.call('ZREM', KEYS[6], ARGV[5])
  redis.call('ZADD', KEYS[7], 0, ARGV[5])
end
local out = {1, ver}
local i = 10
for _ = 1, tonumber(ARGV[9]) do
  local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'type', ARGV[i], 'data', ARGV[i + 1])
  if string.find(ARGV[i + 2], 'c', 1, true) then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'type', ARGV[i], 'data', ARGV[i + 1], 'event_id', eid)
  end
  if string.find(ARGV[i + 2], 'l', 1, true) then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'type', ARGV[i], 'data', ARGV[i + 1], 'interview_id', ARGV[5],
               'team', ARGV[#ARGV])
  end
  table.insert(out, eid)
  i = i + 3
end
if tonumber(ARGV[4]) > 0 then
  for k = 1, #KEYS do
    if k <= 3 or k >= 8 then redis.call('PEXPIRE', KEYS[k], ARGV[4]) end
  end
end
return out
"""

# Gapless sequence + XADD + idempotency by entry id, in one step. A retry of an entry already
# written returns its original sequence and event id ({2, ...}) and writes nothing.
# KEYS: state, events, transcript, entries, then keys that only get the TTL refreshed
# ARGV: entry_id, event_data, entry_data, ttl_ms, events_maxlen, epoch ("" = not fenced)
APPEND_TRANSCRIPT = """
local prev = redis.call('HGET', KEYS[4], ARGV[1])
if prev then
  local sep = string.find(prev, ' ', 1, true)
  return {2, tonumber(string.sub(prev, 1, sep - 1)), string.sub(prev, sep + 1)}
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'missing'} end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[6] then return {0, 'fenced'} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[3], '0-' .. seq, 'data', ARGV[3])
local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'type', 'transcript', 'seq', seq, 'data', ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], seq .. ' ' .. eid)
if tonumber(ARGV[4]) > 0 then
  for k = 1, #KEYS do redis.call('PEXPIRE', KEYS[k], ARGV[4]) end
end
return {1, seq, eid}
"""

# An event without a state change (observation, turn metrics, session joined/left).
# KEYS: state, events, then TTL keys. ARGV: type, data, ttl_ms, events_maxlen, epoch
APPEND_EVENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'missing'} end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[5] then return {0, 'fenced'} end
local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'type', ARGV[1], 'data', ARGV[2])
if tonumber(ARGV[3]) > 0 then
  for k = 1, #KEYS do redis.call('PEXPIRE', KEYS[k], ARGV[3]) end
end
return {1, eid}
"""

# Owner lease with a fencing epoch. The epoch lives in the state hash (it survives the lease) and
# grows on every change of owner, so a stale owner's fenced writes are refused.
# A join by link (ARGV[4] = the link's nonce) is refused while a session joined with that same link
# holds the lease; the link of the session that takes the lease is recorded in the state hash.
# KEYS: state, lease. ARGV: owner, ttl_ms, force ("1" = take over from another holder), link ("" = a
# reconnect with the session credential: the link stays the one the session was joined with)
ACQUIRE_LEASE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 'missing'} end
local cur = redis.call('GET', KEYS[2])
if ARGV[4] ~= '' then
  if cur and redis.call('HGET', KEYS[1], 'link') == ARGV[4] then return {0, 'link_in_use'} end
end
if cur then
  local sep = string.find(cur, '|', 1, true)
  local holder = string.sub(cur, 1, sep - 1)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'link', ARGV[4]) end
    return {1, tonumber(string.sub(cur, sep + 1))}
  end
  if ARGV[3] ~= '1' then return {0, holder} end
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'link', ARGV[4]) end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return {1, epoch}
"""

# A lease that merely expired (Redis was down longer than its TTL: the expiry is absolute) is
# taken back when nobody took over meanwhile (the state's epoch is still the owner's).
# KEYS: lease, state. ARGV: owner|epoch, ttl_ms, epoch. 1 = renewed, 0 = lost (taken over).
RENEW_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur and redis.call('HGET', KEYS[2], 'epoch') == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: state, lease. ARGV: owner|epoch, owner. 1 = released.
RELEASE_LEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  if redis.call('HGET', KEYS[1], 'owner') == ARGV[2] then redis.call('HSET', KEYS[1], 'owner', '') end
  return 1
end
return 0
"""

# The owner records how far it has applied the control stream (fenced), so a new owner resumes.
# KEYS: state. ARGV: epoch, control_id
ACK_CONTROL = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'control_cursor', ARGV[2])
return 1
"""

# The owner's in-flight marker: what the transcript would get if the session were cut off now
# (fenced, so a replaced owner cannot overwrite its successor's view). "" = nothing in flight.
# The index (sorted set, score = time of the last change in ms) lets the sweeper find markers
# whose owner died without a successor.
# KEYS: state, inflight, inflight index. ARGV: epoch, data, ttl_ms, id, now_ms
SET_INFLIGHT = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[4])
else
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[2], ARGV[2])
  end
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
end
return 1
"""

# A new owner, once the marker's entries are written: delete it unless it changed meanwhile.
# KEYS: state, inflight, inflight index. ARGV: epoch, data read, id
CLEAR_INFLIGHT = """
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[3])
end
return 1
"""

# Erasure. KEYS: the interview's keys (state first), then index keys, then lifecycle.
# ARGV: id, n_interview_keys, n_index_keys, lifecycle_data, lifecycle_maxlen, team. Returns keys deleted or -1.
DELETE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = tonumber(ARGV[2])
local deleted = 0
for k = 1, n do deleted = deleted + redis.call('DEL', KEYS[k]) end
for k = n + 1, n + tonumber(ARGV[3]) do redis.call('ZREM', KEYS[k], ARGV[1]) end
redis.call('XADD', KEYS[#KEYS], 'MAXLEN', '~', ARGV[5], '*', 'type', 'lifecycle', 'data', ARGV[4], 'interview_id', ARGV[1],
           'team', ARGV[6])
return deleted
"""

# The newest event of one type (read-only): scans back from the end in pages, on the server, so
# only the match travels; gives up (nil) after max_scan events so Redis is never held for long.
# KEYS: events. ARGV: type, page, max_scan. Returns {stream_id, {field, value, ...}} or nil.
LAST_EVENT = """
local upto, scanned = '+', 0
while scanned < tonumber(ARGV[3]) do
  local rows = redis.call('XREVRANGE', KEYS[1], upto, '-', 'COUNT', ARGV[2])
  if #rows == 0 then return false end
  for _, row in ipairs(rows) do
    local f = row[2]
    for i = 1, #f, 2 do
      if f[i] == 'type' then
        if f[i + 1] == ARGV[1] then return row end
        break
      end
    end
  end
  scanned = scanned + #rows
  upto = '(' .. rows[#rows][1]
end
return false
"""

# Revoke every join link and session credential issued so far (they carry the generation).
# KEYS: state. Returns the new generation, or -1 when the interview does not exist.
BUMP_LINK_GEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], 'link_gen', 1)
"""
