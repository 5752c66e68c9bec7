-- spec/support/fake_db.lua — an in-memory host.db for route specs.
--
-- It does not parse SQL: it looks the statement up in lib/store.lua's named
-- statements (store.SQL) and runs an in-memory version of that statement by
-- name. So specs exercise the store's glue (parameters, error mapping, row
-- shapes) and the routes, while the real SQL is exercised by spec/e2e against
-- PostgreSQL. A statement the fake does not know raises, naming it.
--
-- Rows come back as the real binding gives them: ids as numbers, timestamps
-- as "2026-12-01T13:45:00Z" strings, NULL as cjson.null, plus rows.affected.
--
-- Controls for specs:
--   fake:fail(name, err?, times?)  the next `times` (default 1; math.huge for
--                                  always) runs of statement `name` (or "*")
--                                  return nil, err (default: unavailable)
--   fake:not_ready(err?)           db.ready() answers nil, err
--   fake.calls                     {name, args} of every statement run
--   fake.state                     the tables: admins, users, sessions,
--                                  tokens, rates, audit (rows with numeric
--                                  times)
local cjson = require "cjson.safe"

local null = cjson.null
local pairs, ipairs, type, tonumber, tostring, error, select, unpack, setmetatable, assert =
  pairs, ipairs, type, tonumber, tostring, error, select, unpack, setmetatable, assert
local lower, find, gsub, format, date = string.lower, string.find, string.gsub, string.format, os.date
local sort, ceil = table.sort, math.ceil

local FakeDB = {}
FakeDB.__index = FakeDB

local UNAVAILABLE = {code = "unavailable", message = "could not connect to server: Connection refused"}

local function is_null(v) return v == nil or v == null end
local function nullable(v) if is_null(v) then return null end return v end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return out
end

local function unique_violation(constraint)
  return nil, {code = "query", sqlstate = "23505", constraint = constraint,
               message = format('duplicate key value violates unique constraint "%s"', constraint)}
end

local function rows(list, affected)
  list = list or {}
  list.affected = affected or #list
  return list
end

-- LIKE/ILIKE of lib/validate.contains_pattern: %literal% with \ escapes.
local function contains(value, pattern)
  if is_null(pattern) then return true end
  if is_null(value) then return false end
  local needle = gsub(gsub(gsub(pattern, "^%%", ""), "%%$", ""), "\\(.)", "%1")
  return find(lower(value), lower(needle), 1, true) ~= nil
end

function FakeDB.new(clock)
  local self = setmetatable({clock = clock, calls = {}, failures = {}, ready_error = nil}, FakeDB)
  self:reset()
  local fake = self
  -- the module table scripts see as host.db
  self.module = {
    query = function(sql, ...) return fake:query(sql, ...) end,
    transaction = function(fn) return fake:transaction(fn) end,
    ready = function()
      if fake.ready_error then return nil, fake.ready_error end
      return true
    end,
  }
  return self
end

function FakeDB:reset()
  self.state = {admins = {}, users = {}, sessions = {}, tokens = {}, rates = {}, audit = {}, outbox = {},
                seq = {admins = 0, users = 0, sessions = 0, tokens = 0, audit = 0, outbox = 0}}
  self.calls = {}
end

-- Names the statements: sql text -> name (from lib/store.lua).
function FakeDB:bind(sql_by_name)
  self.names = {}
  for name, sql in pairs(sql_by_name) do self.names[sql] = name end
end

function FakeDB:fail(name, err, times)
  self.failures[name or "*"] = {err = err or UNAVAILABLE, times = times or 1}
end

function FakeDB:not_ready(err)
  self.ready_error = err or UNAVAILABLE
end

function FakeDB:now() return self.clock.now end

local function ts(t) return date("!%Y-%m-%dT%H:%M:%SZ", t) end

function FakeDB:count(name)
  local n = 0
  for _, call in ipairs(self.calls) do
    if call.name == name then n = n + 1 end
  end
  return n
end

local function take_failure(self, name)
  for _, key in ipairs({name, "*"}) do
    local f = self.failures[key]
    if f and f.times > 0 then
      f.times = f.times - 1
      return f.err
    end
  end
end

function FakeDB:query(sql, ...)
  if type(sql) ~= "string" then error("bad argument #1 to 'query' (string expected)", 2) end
  local name = self.names and self.names[sql]
  if not name then error("fake db: no fake for this statement (is it in lib/store.lua's SQL?): " .. sql, 2) end
  local args = {n = select("#", ...), ...}
  for i = 1, args.n do
    local t = type(args[i])
    if not (t == "string" or t == "number" or t == "boolean" or args[i] == null) then
      error(format("fake db: %s: parameter $%d is a %s", name, i, t), 2)
    end
  end
  self.calls[#self.calls + 1] = {name = name, args = args}
  local err = take_failure(self, name)
  if err then return nil, err end
  local impl = FakeDB.statements[name]
  if not impl then error("fake db: statement '" .. name .. "' has no in-memory version", 2) end
  return impl(self, self.state, unpack(args, 1, args.n))
end

-- As docs/db.md: a truthy first result commits (a failed commit returns
-- nil, err: fail("COMMIT")); nil, err or false rolls back; a raise rolls back
-- and raises again.
function FakeDB:transaction(fn)
  local saved = deep_copy(self.state)
  self.in_transaction = (self.in_transaction or 0) + 1
  local fake = self
  local tx = {query = function(sql, ...) return fake:query(sql, ...) end}
  local results = {pcall(fn, tx)}
  self.in_transaction = self.in_transaction - 1
  if not results[1] then
    self.state = saved
    error(results[2], 0)
  end
  if not results[2] then -- nil, err or false: ROLLBACK, and fn's results
    self.state = saved
    return results[2], results[3]
  end
  local err = take_failure(self, "COMMIT")
  if err then
    self.state = saved
    return nil, err
  end
  return unpack(results, 2, #results)
end

-- ---- rows ------------------------------------------------------------------

local function admin_out(a)
  return {id = a.id, email = a.email, name = a.name, confirmed = a.confirmed,
          created_at = ts(a.created_at), updated_at = ts(a.updated_at)}
end

local function user_out(u)
  return {id = u.id, email = u.email, name = nullable(u.name), active = u.active,
          created_by = nullable(u.created_by), created_at = ts(u.created_at), updated_at = ts(u.updated_at)}
end

local function find_by(list, key, value)
  for i, row in ipairs(list) do
    if row[key] == value then return row, i end
  end
end

local function email_taken(list, email, except_id)
  for _, row in ipairs(list) do
    if lower(row.email) == lower(email) and row.id ~= except_id then return true end
  end
end

local function name_taken(list, name, except_id)
  for _, row in ipairs(list) do
    if lower(row.name) == lower(name) and row.id ~= except_id then return true end
  end
end

local function page(list, after, limit, pattern, out)
  local matched = {}
  for _, row in ipairs(list) do
    if row.id > tonumber(after) and (contains(row.email, pattern) or contains(row.name, pattern)) then
      matched[#matched + 1] = row
    end
  end
  sort(matched, function(a, b) return a.id < b.id end)
  local result = {}
  for i = 1, math.min(#matched, tonumber(limit)) do result[i] = out(matched[i]) end
  return rows(result)
end

local function live_session(self, s)
  return s and s.revoked_at == nil and s.expires_at > self:now()
end

-- ---- the audit trail ----------------------------------------------------------

local function event_out(e)
  return {id = e.id, at = ts(e.at), actor_id = nullable(e.actor_id), action = e.action,
          target_type = nullable(e.target_type), target_id = nullable(e.target_id),
          request_id = nullable(e.request_id), client = nullable(e.client), detail = deep_copy(e.detail)}
end

-- Appends an event; returns it as the statements' `audit` column holds it.
local function record(self, st, actor, action, target_type, target_id, request_id, client, detail)
  st.seq.audit = st.seq.audit + 1
  local e = {id = st.seq.audit, at = self:now(), actor_id = not is_null(actor) and tonumber(actor) or nil,
             action = action, target_type = target_type, target_id = not is_null(target_id) and tonumber(target_id) or nil,
             request_id = not is_null(request_id) and request_id or nil, client = not is_null(client) and client or nil,
             detail = detail or {}}
  st.audit[#st.audit + 1] = e
  return event_out(e)
end

-- The `audit` column: the events of the statement, or null.
local function events_column(list)
  if #list == 0 then return null end
  return list
end

-- ---- statements, by the names of lib/store.lua ------------------------------

local S = {}
FakeDB.statements = S

function S.create_admin(self, st, email, name, hash, actor, request_id, client)
  email = lower(email)
  if email_taken(st.admins, email) then return unique_violation("admins_email_key") end
  if name_taken(st.admins, name) then return unique_violation("admins_name_key") end
  st.seq.admins = st.seq.admins + 1
  local a = {id = st.seq.admins, email = email, name = name, password_hash = hash, confirmed = false,
             created_at = self:now(), updated_at = self:now()}
  st.admins[#st.admins + 1] = a
  local row = admin_out(a)
  row.audit = {record(self, st, actor, "admin.registered", "admin", a.id, request_id, client,
                      {email = a.email, name = a.name})}
  return rows({row})
end

function S.admin_by_id(_, st, id)
  local a = find_by(st.admins, "id", tonumber(id))
  return rows({a and admin_out(a)})
end

function S.admin_taken(_, st, email, name)
  return rows({{email = email_taken(st.admins, email), name = name_taken(st.admins, name)}})
end

function S.admin_login(_, st, email)
  local a = find_by(st.admins, "email", lower(email))
  if not a then return rows({}) end
  local row = admin_out(a)
  row.password_hash = a.password_hash
  return rows({row})
end

function S.admin_password_hash(_, st, id)
  local a = find_by(st.admins, "id", tonumber(id))
  return rows({a and {password_hash = a.password_hash}})
end

function S.update_admin(self, st, id, name, email, hash, actor, request_id, client)
  local a = find_by(st.admins, "id", tonumber(id))
  if not a then return rows({}) end
  if not is_null(email) and email_taken(st.admins, email, a.id) then return unique_violation("admins_email_key") end
  if not is_null(name) and name_taken(st.admins, name, a.id) then return unique_violation("admins_name_key") end
  local old_name, old_email = a.name, a.email
  if not is_null(name) then a.name = name end
  if not is_null(email) then
    if lower(email) ~= a.email then a.confirmed = false end
    a.email = lower(email)
  end
  if not is_null(hash) then a.password_hash = hash end
  a.updated_at = self:now()
  local events = {}
  if a.name ~= old_name then
    events[#events + 1] = record(self, st, actor, "admin.updated", "admin", a.id, request_id, client,
                                 {changes = {name = {old = old_name, new = a.name}}})
  end
  if a.email ~= old_email then
    events[#events + 1] = record(self, st, actor, "admin.email_changed", "admin", a.id, request_id, client,
                                 {changes = {email = {old = old_email, new = a.email}}})
  end
  local row = admin_out(a)
  row.audit = events_column(events)
  return rows({row})
end

function S.rehash_password(_, st, id, old, new)
  local a = find_by(st.admins, "id", tonumber(id))
  if a and a.password_hash == old then
    a.password_hash = new
    return rows({}, 1)
  end
  return rows({}, 0)
end

function S.reset_password(self, st, id, hash, email)
  local a = find_by(st.admins, "id", tonumber(id))
  if not a then return rows({}) end
  a.password_hash = hash
  a.confirmed = a.confirmed or a.email == lower(email)
  a.updated_at = self:now()
  return rows({{id = a.id}})
end

function S.delete_admin(self, st, id, actor, request_id, client)
  id = tonumber(id)
  local a, i = find_by(st.admins, "id", id)
  if not a then return rows({}) end
  local event = record(self, st, actor, "admin.deleted", "admin", id, request_id, client,
                       {email = a.email, name = a.name})
  table.remove(st.admins, i)
  local keep = {}
  for _, s in ipairs(st.sessions) do if s.admin_id ~= id then keep[#keep + 1] = s end end
  st.sessions = keep
  keep = {}
  for _, t in ipairs(st.tokens) do if t.admin_id ~= id then keep[#keep + 1] = t end end
  st.tokens = keep
  for _, u in ipairs(st.users) do if u.created_by == id then u.created_by = nil end end
  return rows({{id = id, audit = {event}}})
end

function S.list_admins(_, st, after, limit, pattern)
  return page(st.admins, after, limit, pattern, admin_out)
end

function S.create_token(self, st, kind, hash, admin_id, email, ttl)
  if kind ~= "confirm" and kind ~= "reset" then
    return nil, {code = "query", sqlstate = "23514", constraint = "one_time_tokens_kind_check", message = "check violation"}
  end
  if find_by(st.tokens, "token_hash", hash) then return unique_violation("one_time_tokens_token_hash_key") end
  st.seq.tokens = st.seq.tokens + 1
  st.tokens[#st.tokens + 1] = {id = st.seq.tokens, kind = kind, token_hash = hash, admin_id = tonumber(admin_id),
                               email = lower(email), created_at = self:now(), expires_at = self:now() + ttl}
  return rows({}, 1)
end

function S.drop_unused_tokens(_, st, admin_id, kind)
  local keep, n = {}, 0
  for _, t in ipairs(st.tokens) do
    if t.admin_id == tonumber(admin_id) and t.used_at == nil and (is_null(kind) or t.kind == kind) then
      n = n + 1
    else
      keep[#keep + 1] = t
    end
  end
  st.tokens = keep
  return rows({}, n)
end

local function usable_token(self, st, hash, kind)
  local t = find_by(st.tokens, "token_hash", hash)
  if t and t.kind == kind and t.used_at == nil and t.expires_at > self:now() then return t end
end

function S.confirm_admin(self, st, hash, actor, request_id, client)
  local t = usable_token(self, st, hash, "confirm")
  if not t then return rows({}) end
  t.used_at = self:now()
  local a = find_by(st.admins, "id", t.admin_id)
  if not a or a.email ~= t.email then return rows({}) end
  if not a.confirmed then a.updated_at = self:now() end
  a.confirmed = true
  local row = admin_out(a)
  row.audit = {record(self, st, actor, "admin.confirmed", "admin", a.id, request_id, client, {email = a.email})}
  return rows({row})
end

function S.peek_reset_token(self, st, hash)
  local t = usable_token(self, st, hash, "reset")
  local a = t and find_by(st.admins, "id", t.admin_id)
  if not a or a.email ~= t.email then return rows({}) end
  return rows({{admin_id = a.id, email = a.email, name = a.name}})
end

function S.use_reset_token(self, st, hash)
  local t = usable_token(self, st, hash, "reset")
  if not t then return rows({}) end
  t.used_at = self:now()
  return rows({{admin_id = t.admin_id, email = t.email}})
end

function S.create_session(self, st, admin_id, jti, ttl, actor, request_id, client, rehashed)
  if not find_by(st.admins, "id", tonumber(admin_id)) then
    return nil, {code = "query", sqlstate = "23503", constraint = "sessions_admin_id_fkey", message = "foreign key violation"}
  end
  st.seq.sessions = st.seq.sessions + 1
  local s = {id = st.seq.sessions, admin_id = tonumber(admin_id), refresh_jti = jti, created_at = self:now(),
             last_used_at = self:now(), expires_at = self:now() + ttl}
  st.sessions[#st.sessions + 1] = s
  local event = record(self, st, actor, "admin.login", "admin", s.admin_id, request_id, client,
                       {session_id = s.id, rehashed = rehashed == true or nil})
  return rows({{id = s.id, audit = {event}}})
end

-- With user_id, the user's columns too, prefixed u_ (all null for no such
-- user), as the real statement's LEFT JOIN gives them.
function S.session_admin(self, st, sid, admin_id, user_id)
  local s = find_by(st.sessions, "id", tonumber(sid))
  if not live_session(self, s) or s.admin_id ~= tonumber(admin_id) then return rows({}) end
  local a = find_by(st.admins, "id", s.admin_id)
  local row = a and admin_out(a)
  if row and not is_null(user_id) then
    local u = find_by(st.users, "id", tonumber(user_id))
    local out = u and user_out(u) or {}
    for _, f in ipairs({"id", "email", "name", "active", "created_by", "created_at", "updated_at"}) do
      row["u_" .. f] = nullable(out[f])
    end
  end
  return rows({row})
end

-- the same check without the admin's columns (its id instead)
function S.session_live(self, st, sid, admin_id, user_id)
  local res = S.session_admin(self, st, sid, admin_id, user_id)
  for _, row in ipairs(res) do
    for _, f in ipairs({"email", "name", "confirmed", "created_at", "updated_at"}) do row[f] = nil end
  end
  return res
end

function S.rotate_session(self, st, sid, admin_id, old, new, ttl, max_age, actor, request_id, client)
  local s = find_by(st.sessions, "id", tonumber(sid))
  if not live_session(self, s) or s.admin_id ~= tonumber(admin_id) or s.refresh_jti ~= old then
    return rows({})
  end
  s.refresh_jti, s.last_used_at = new, self:now()
  s.expires_at = math.min(self:now() + ttl, s.created_at + max_age)
  local a = find_by(st.admins, "id", s.admin_id)
  if not a then return rows({}) end
  local row = admin_out(a)
  row.ttl = ceil(s.expires_at - self:now())
  row.audit = {record(self, st, actor, "admin.refreshed", "admin", a.id, request_id, client, {session_id = s.id})}
  return rows({row})
end

function S.revoke_session(self, st, sid, action, actor, request_id, client)
  local s = find_by(st.sessions, "id", tonumber(sid))
  if not s or s.revoked_at ~= nil then return rows({}) end
  s.revoked_at = self:now()
  local events = {}
  if not is_null(action) then
    events[1] = record(self, st, actor, action, "admin", s.admin_id, request_id, client, {session_id = s.id})
  end
  return rows({{id = s.id, audit = events_column(events)}})
end

function S.revoke_sessions(self, st, admin_id, except, action, actor, request_id, client)
  local n = 0
  for _, s in ipairs(st.sessions) do
    if s.admin_id == tonumber(admin_id) and s.revoked_at == nil and (is_null(except) or s.id ~= tonumber(except)) then
      s.revoked_at = self:now()
      n = n + 1
    end
  end
  local events = {}
  if not is_null(action) then
    events[1] = record(self, st, actor, action, "admin", admin_id, request_id, client, {sessions_ended = n})
  end
  return rows({{ended = n, audit = events_column(events)}})
end

local function rate_key(kind, key) return kind .. "\0" .. key end

function S.rate_hit(self, st, kind, key, window)
  local now = self:now()
  local r = st.rates[rate_key(kind, key)]
  if not r then
    r = {kind = kind, key = key, window_start = now, count = 1}
    st.rates[rate_key(kind, key)] = r
  elseif r.window_start <= now - window then
    r.window_start, r.count = now, 1
  else
    r.count = r.count + 1
  end
  return rows({{count = r.count, retry_after = ceil(r.window_start + window - now)}})
end

-- rate_hit, and the window's admin.login_failed event once over `limit`
-- (created by the first refused attempt, counting the later ones).
function S.login_hit(self, st, kind, email, window, limit, actor, request_id, client)
  local hit = S.rate_hit(self, st, kind, email, window)[1]
  local r = st.rates[rate_key(kind, email)]
  local row = {count = hit.count, retry_after = hit.retry_after, audit = null}
  if hit.count > tonumber(limit) then
    local key = kind .. ":" .. email .. ":" .. r.window_start
    for _, e in ipairs(st.audit) do
      if e.window_key == key then
        e.detail.refused = e.detail.refused + 1
        return rows({row})
      end
    end
    local a = find_by(st.admins, "email", email)
    local event = record(self, st, actor, "admin.login_failed", "admin", a and a.id, request_id, client,
                         {email = email, reason = "rate_limited", refused = 1, window_start = ts(r.window_start)})
    st.audit[#st.audit].window_key = key
    row.audit = {event}
  end
  return rows({row})
end

function S.rate_take_back(_, st, kind, key)
  local r = st.rates[rate_key(kind, key)]
  if not r or r.count <= 0 then return rows({}, 0) end
  r.count = r.count - 1
  return rows({}, 1)
end

function S.mail_request(self, st, rate_kind, email, window, kind, hash, ttl, limit, token, group)
  local hit = S.rate_hit(self, st, rate_kind, email, window)[1]
  local row = {count = hit.count, retry_after = hit.retry_after, admin_id = null}
  local a = find_by(st.admins, "email", email)
  if a and hit.count <= tonumber(limit) and (kind ~= "confirm" or not a.confirmed) then
    local _, err = S.create_token(self, st, kind, hash, a.id, a.email, ttl)
    if err then return nil, err end
    S.queue_mail(self, st, kind, a.email, a.name, token, ttl, group)
    row.admin_id = a.id
  end
  return rows({row})
end

-- ---- the mail outbox ----------------------------------------------------------------

function S.queue_mail(self, st, kind, to, name, token, ttl, group)
  st.seq.outbox = st.seq.outbox + 1
  st.outbox[#st.outbox + 1] = {id = st.seq.outbox, message_id = format("fake%028d", st.seq.outbox), kind = kind,
                               to_addr = to, name = name, token = token, ttl_s = ttl, status = "due", group = group,
                               attempts = 0, due_at = self:now()}
  return rows({}, 1)
end

function S.claim_mail(self, st, lease, group)
  local oldest
  for _, m in ipairs(st.outbox) do
    local due = m.group == group and m.status == "due" and m.due_at <= self:now()
    if due and (not oldest or m.due_at < oldest.due_at) then oldest = m end
  end
  if not oldest then return rows({}) end
  oldest.due_at, oldest.attempts = self:now() + lease, oldest.attempts + 1
  return rows({deep_copy(oldest)})
end

local function outbox_row(st, id)
  for _, m in ipairs(st.outbox) do
    if m.id == id and m.status == "due" then return m end
  end
end

function S.mail_sent(self, st, id)
  local m = outbox_row(st, id)
  if not m then return rows({}, 0) end
  m.status, m.done_at, m.token, m.last_error = "sent", self:now(), nil, nil
  return rows({}, 1)
end

function S.mail_retry(self, st, id, delay, err)
  local m = outbox_row(st, id)
  if not m then return rows({}, 0) end
  m.due_at, m.last_error = self:now() + delay, err
  return rows({}, 1)
end

function S.mail_failed(self, st, id, err)
  local m = outbox_row(st, id)
  if not m then return rows({}, 0) end
  m.status, m.done_at, m.token, m.last_error = "failed", self:now(), nil, err
  return rows({}, 1)
end

-- ---- retention ------------------------------------------------------------------

function S.sweep_lock() return rows({{locked = true}}) end

-- Deletes up to `limit` entries of st[key] (a list, or a map) for which
-- `past(entry, cutoff)` holds; the count as the statement's row.
local function sweep(self, st, key, retention, limit, past)
  local cutoff, deleted = self:now() - retention, 0
  local t = st[key]
  for k, v in pairs(t) do
    if deleted < limit and past(v, cutoff) then
      t[k] = false
      deleted = deleted + 1
    end
  end
  local kept = {}
  if #t > 0 then
    for _, v in ipairs(t) do if v then kept[#kept + 1] = v end end
  else
    for k, v in pairs(t) do if v then kept[k] = v end end
  end
  st[key] = kept
  return rows({{deleted = deleted}})
end

local function older(t, cutoff) return t ~= nil and t ~= null and t < cutoff end

function S.sweep_sessions(self, st, retention, limit)
  return sweep(self, st, "sessions", retention, limit,
               function(s, cutoff) return older(s.expires_at, cutoff) or older(s.revoked_at, cutoff) end)
end

function S.sweep_tokens(self, st, retention, limit)
  return sweep(self, st, "tokens", retention, limit,
               function(t, cutoff) return older(t.expires_at, cutoff) or older(t.used_at, cutoff) end)
end

function S.sweep_rate_limits(self, st, retention, limit)
  return sweep(self, st, "rates", retention, limit,
               function(r, cutoff) return older(r.window_start, cutoff) end)
end

function S.sweep_mail(self, st, retention, limit)
  return sweep(self, st, "outbox", retention, limit,
               function(m, cutoff) return m.status ~= "due" and older(m.done_at, cutoff) end)
end

function S.sweep_audit(self, st, retention, limit)
  return sweep(self, st, "audit", retention, limit, function(e, cutoff) return older(e.at, cutoff) end)
end

function S.outbox_stats(self, st, group)
  local depth, oldest = 0, nil
  for _, m in ipairs(st.outbox) do
    if m.group == group and m.status == "due" then
      depth = depth + 1
      if m.due_at <= self:now() and (not oldest or m.due_at < oldest) then oldest = m.due_at end
    end
  end
  return rows({{depth = depth, oldest_due_s = oldest and self:now() - oldest or 0}})
end

function S.rate_clear(_, st, kind, key)
  local had = st.rates[rate_key(kind, key)] ~= nil
  st.rates[rate_key(kind, key)] = nil
  return rows({}, had and 1 or 0)
end

function S.create_user(self, st, email, name, active, created_by, actor, request_id, client)
  email = lower(email)
  if email_taken(st.users, email) then return unique_violation("users_email_key") end
  st.seq.users = st.seq.users + 1
  local u = {id = st.seq.users, email = email, name = not is_null(name) and name or nil, active = active,
             created_by = tonumber(created_by), created_at = self:now(), updated_at = self:now()}
  st.users[#st.users + 1] = u
  local row = user_out(u)
  row.audit = {record(self, st, actor, "user.created", "user", u.id, request_id, client,
                      {email = u.email, name = nullable(u.name), active = u.active})}
  return rows({row})
end

function S.user_by_id(_, st, id)
  local u = find_by(st.users, "id", tonumber(id))
  return rows({u and user_out(u)})
end

function S.update_user(self, st, id, email, set_name, name, active, actor, request_id, client)
  local u = find_by(st.users, "id", tonumber(id))
  if not u then return rows({}) end
  if not is_null(email) and email_taken(st.users, email, u.id) then return unique_violation("users_email_key") end
  local old = {email = u.email, name = u.name, active = u.active}
  if not is_null(email) then u.email = lower(email) end
  if set_name then u.name = not is_null(name) and name or nil end
  if not is_null(active) then u.active = active end
  u.updated_at = self:now()
  local changes, changed = {}, false
  for _, f in ipairs({"email", "name", "active"}) do
    if old[f] ~= u[f] then
      changes[f] = {old = nullable(old[f]), new = nullable(u[f])}
      changed = true
    end
  end
  local row = user_out(u)
  row.audit = changed and {record(self, st, actor, "user.updated", "user", u.id, request_id, client,
                                 {changes = changes})} or null
  return rows({row})
end

function S.delete_user(self, st, id, actor, request_id, client)
  local u, i = find_by(st.users, "id", tonumber(id))
  if not u then return rows({}) end
  table.remove(st.users, i)
  local row = user_out(u)
  row.audit = {record(self, st, actor, "user.deleted", "user", u.id, request_id, client,
                      {email = u.email, name = nullable(u.name), active = u.active,
                       created_by = nullable(u.created_by)})}
  return rows({row})
end

function S.list_users(_, st, after, limit, pattern)
  return page(st.users, after, limit, pattern, user_out)
end
-- the two search statements (a q with a trigram, a shorter one) answer as
-- the plain list does with a pattern: their plans differ, not their rows
S.list_users_search = S.list_users
S.list_users_scan = S.list_users

function S.audit_record(self, st, events)
  local list = assert(cjson.decode(events), "audit_record: $1 is not JSON")
  local out = {}
  for i, e in ipairs(list) do
    out[i] = record(self, st, e.actor_id, e.action, e.target_type, e.target_id, e.request_id, e.client, e.detail)
  end
  return rows(out)
end

-- moonkeep import (tools/import.lua): the lookups, the sequences, the rows.
local function imported_as(st, action, source_id, email)
  for i = #st.audit, 1, -1 do
    local e = st.audit[i]
    if e.action == action and tostring(e.detail.source_id) == tostring(source_id) and e.detail.email == email then
      return e.target_id
    end
  end
  return null
end

local function import_lookup(st, table_name, action, entries, with_name)
  local out = {}
  for i, e in ipairs(assert(cjson.decode(entries))) do
    local id = tonumber(e.id)
    local by_id = find_by(st[table_name], "id", id)
    local by_email = find_by(st[table_name], "email", e.email)
    local row = {source_id = id, id_email = by_id and by_id.email or null, email_owner = by_email and by_email.id or null,
                 imported_as = imported_as(st, action, id, e.email)}
    if with_name then
      row.name_owner = null
      for _, a in ipairs(st[table_name]) do
        if lower(a.name) == lower(e.name) then row.name_owner = a.id end
      end
    end
    out[i] = row
  end
  return rows(out)
end

function S.import_admin_lookup(_, st, entries)
  return import_lookup(st, "admins", "admin.imported", entries, true)
end

function S.import_user_lookup(_, st, entries)
  return import_lookup(st, "users", "user.imported", entries, false)
end

local function move_sequence(st, table_name, max_id)
  local top = tonumber(max_id)
  for _, row in ipairs(st[table_name]) do if row.id > top then top = row.id end end
  if top > st.seq[table_name] then st.seq[table_name] = top end
  return rows({})
end

function S.import_admins_sequence(_, st, max_id) return move_sequence(st, "admins", max_id) end
function S.import_users_sequence(_, st, max_id) return move_sequence(st, "users", max_id) end

function S.import_admin(self, st, id, email, name, hash, source_id, run_id)
  if not is_null(id) and find_by(st.admins, "id", tonumber(id)) then return rows({}) end
  if email_taken(st.admins, email) or name_taken(st.admins, name) then return rows({}) end
  if is_null(id) then
    st.seq.admins = st.seq.admins + 1
    id = st.seq.admins
  end
  local a = {id = tonumber(id), email = email, name = name, password_hash = hash, confirmed = true,
             created_at = self:now(), updated_at = self:now()}
  st.admins[#st.admins + 1] = a
  return rows({{id = a.id, audit = {record(self, st, null, "admin.imported", "admin", a.id, run_id, null,
                                           {source_id = tonumber(source_id), email = email, name = name})}}})
end

function S.import_user(self, st, id, email, active, source_id, run_id)
  if not is_null(id) and find_by(st.users, "id", tonumber(id)) then return rows({}) end
  if email_taken(st.users, email) then return rows({}) end
  if is_null(id) then
    st.seq.users = st.seq.users + 1
    id = st.seq.users
  end
  local u = {id = tonumber(id), email = email, active = active, created_at = self:now(), updated_at = self:now()}
  st.users[#st.users + 1] = u
  return rows({{id = u.id, audit = {record(self, st, null, "user.imported", "user", u.id, run_id, null,
                                           {source_id = tonumber(source_id), email = email, active = active})}}})
end

-- GET /audit: list_audit_<bits>, a bit per filter (actor, action, target,
-- since, until), whose parameters follow $1 (id below) and $2 (limit).
local function parse_ts(s)
  local y, mo, d, h, mi, sec, frac, zone = s:match("^(%d+)-(%d+)-(%d+)[Tt ](%d+):(%d+):(%d+)(%.?%d*)(.*)$")
  local t = os.time({year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
                     min = tonumber(mi), sec = tonumber(sec), isdst = false})
  -- os.time reads the fields as local time: undo the local offset
  local utc_then = os.time(os.date("!*t", t))
  t = t + (t - utc_then) + (tonumber("0" .. frac) or 0)
  local sign, zh, zm = zone:match("^([+-])(%d%d):(%d%d)$")
  if sign then t = t - (sign == "+" and 1 or -1) * (tonumber(zh) * 3600 + tonumber(zm) * 60) end
  return t
end
FakeDB.parse_ts = parse_ts

for m = 0, 31 do
  local bits, digits = {}, {}
  for i = 1, 5 do
    bits[i] = math.floor(m / 2 ^ (i - 1)) % 2 == 1
    digits[i] = bits[i] and "1" or "0"
  end
  S["list_audit_" .. table.concat(digits)] = function(_, st, before, limit, ...)
    local args, n = {...}, 0
    local function arg() n = n + 1; return args[n] end
    local actor = bits[1] and tonumber(arg())
    local action = bits[2] and arg()
    local ttype, tid
    if bits[3] then ttype, tid = arg(), tonumber(arg()) end
    local since = bits[4] and parse_ts(arg())
    local before_t = bits[5] and parse_ts(arg())
    local matched = {}
    for _, e in ipairs(st.audit) do
      if e.id < tonumber(before) and (not actor or e.actor_id == actor) and (not action or e.action == action)
          and (not ttype or (e.target_type == ttype and e.target_id == tid))
          and (not since or e.at >= since) and (not before_t or e.at < before_t) then
        matched[#matched + 1] = e
      end
    end
    sort(matched, function(a, b) return a.id > b.id end)
    local out = {}
    for i = 1, math.min(#matched, tonumber(limit)) do out[i] = event_out(matched[i]) end
    return rows(out)
  end
end

return FakeDB
