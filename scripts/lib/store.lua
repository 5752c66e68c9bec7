-- lib/store.lua — every SQL statement the scripts issue, by name, and the
-- one place where database errors become responses:
--
--   err.code "unavailable" | "timeout"  -> 503 unavailable
--   SQLSTATE 23505 (unique violation)   -> 409 conflict, `fields` from the
--                                          constraint's name (CONFLICTS)
--   anything else                       -> raised: the host logs it with the
--                                          request id and answers 500
--
-- Methods return their result, or nil when there is nothing (not found), or
-- nil and an error response. `store:transaction(fn)` runs fn(tx_store) in one
-- transaction (rolled back when fn raises or returns nil, err).
--
-- Password hashes stay in here and in lib/auth.lua: no method that returns an
-- admin returns its hash (admin_login and password_hash are the two that
-- return a hash, and return nothing else a handler could send).
local db = require "host.db"
local cjson = require "cjson.safe"
local http = require "lib.http"
local log = require "host.log"

local type, setmetatable, tostring, select, unpack, ipairs = type, setmetatable, tostring, select, unpack, ipairs
local format, find = string.format, string.find
local null = cjson.null

-- ---- statements -----------------------------------------------------------

local ADMIN = "id, email, name, confirmed, created_at, updated_at"
local ADMIN_A = "a.id, a.email, a.name, a.confirmed, a.created_at, a.updated_at"
local USER = "id, email, name, active, created_by, created_at, updated_at"
-- The user columns session_admin reads beside the admin's (same names, so
-- prefixed): one round trip for GET /users/{id} (docs/performance.md).
local USER_FIELDS = {"id", "email", "name", "active", "created_by", "created_at", "updated_at"}
local USER_U_FIELDS = {} -- "u_id", ...: made once, not per request
for i, f in ipairs(USER_FIELDS) do USER_U_FIELDS[i] = "u_" .. f end
local USER_U = "u.id AS u_id, u.email AS u_email, u.name AS u_name, u.active AS u_active,"
  .. " u.created_by AS u_created_by, u.created_at AS u_created_at, u.updated_at AS u_updated_at"
local SECONDS = "make_interval(secs => %s::double precision)"

local function secs(param) return format(SECONDS, param) end

-- GET /users?q=: the users whose email or name contains $3. The pattern is
-- read through a subquery, so that no plan is made for its value: the
-- statements' shape does not depend on it (list_users_search), and a plan
-- made for a value would be made again on every run (PostgreSQL keeps
-- planning a prepared statement while the plans for the values it was given
-- look cheaper than the generic one: 0.4 ms of planning for a 0.15 ms query
-- at 1M users).
local USER_MATCHES = "(email ILIKE (SELECT $3::text) OR name ILIKE (SELECT $3::text))"
local SEARCH_NEAR = 500
local SEARCH_FOUND = 2000

-- Counts one event of ($1 kind, $2 key) in a fixed window of $3 seconds (a
-- window older than that starts again at 1); returns count, retry_after.
local RATE_HIT = "INSERT INTO rate_limits AS r (kind, key, window_start, count) VALUES ($1::text, $2::text, now(), 1)"
  .. " ON CONFLICT (kind, key) DO UPDATE SET"
  .. " window_start = CASE WHEN r.window_start <= now() - " .. secs("$3") .. " THEN now() ELSE r.window_start END,"
  .. " count = CASE WHEN r.window_start <= now() - " .. secs("$3") .. " THEN 1 ELSE r.count + 1 END"
  .. " RETURNING r.count, ceil(extract(epoch FROM r.window_start + " .. secs("$3") .. " - now()))::integer AS retry_after"

local SQL = {
  -- admins
  -- Emails arrive in their canonical form (validate.email) and are compared
  -- as stored: no lower() here (migrations/0004).
  create_admin = "INSERT INTO admins (email, name, password_hash) VALUES ($1::text, $2::text, $3::text) RETURNING " .. ADMIN,
  admin_by_id = "SELECT " .. ADMIN .. " FROM admins WHERE id = $1::bigint",
  admin_login = "SELECT " .. ADMIN .. ", password_hash FROM admins WHERE email = $1::text",
  -- which of an email and a name are taken (a registration asks before it hashes)
  admin_taken = "SELECT coalesce(bool_or(email = $1::text), false) AS email,"
    .. " coalesce(bool_or(lower(name) = lower($2::text)), false) AS name"
    .. " FROM admins WHERE email = $1::text OR lower(name) = lower($2::text)",
  admin_password_hash = "SELECT password_hash FROM admins WHERE id = $1::bigint",
  update_admin = "UPDATE admins SET"
    .. " name = coalesce($2::text, name),"
    .. " email = coalesce($3::text, email),"
    .. " confirmed = CASE WHEN $3::text IS NOT NULL AND $3::text <> email THEN false ELSE confirmed END,"
    .. " password_hash = coalesce($4::text, password_hash),"
    .. " updated_at = now()"
    .. " WHERE id = $1::bigint RETURNING " .. ADMIN,
  rehash_password = "UPDATE admins SET password_hash = $3::text WHERE id = $1::bigint AND password_hash = $2::text",
  reset_password = "UPDATE admins SET password_hash = $2::text,"
    .. " confirmed = confirmed OR email = $3::text, updated_at = now()"
    .. " WHERE id = $1::bigint RETURNING id",
  delete_admin = "DELETE FROM admins WHERE id = $1::bigint RETURNING id",
  list_admins = "SELECT " .. ADMIN .. " FROM admins WHERE id > $1::bigint"
    .. " AND ($3::text IS NULL OR email ILIKE $3::text ESCAPE '\\' OR name ILIKE $3::text ESCAPE '\\')"
    .. " ORDER BY id LIMIT $2::integer",

  -- one-time tokens (confirmation, reset): only their SHA-256 is stored
  create_token = "INSERT INTO one_time_tokens (kind, token_hash, admin_id, email, expires_at)"
    .. " VALUES ($1::text, $2::text, $3::bigint, $4::text, now() + " .. secs("$5") .. ")",
  drop_unused_tokens = "DELETE FROM one_time_tokens WHERE admin_id = $1::bigint AND used_at IS NULL"
    .. " AND ($2::text IS NULL OR kind = $2::text)",
  confirm_admin = "WITH t AS ("
    .. "UPDATE one_time_tokens SET used_at = now()"
    .. " WHERE token_hash = $1::text AND kind = 'confirm' AND used_at IS NULL AND expires_at > now()"
    .. " RETURNING admin_id, email)"
    .. " UPDATE admins a SET confirmed = true,"
    .. " updated_at = CASE WHEN a.confirmed THEN a.updated_at ELSE now() END"
    .. " FROM t WHERE a.id = t.admin_id AND a.email = t.email RETURNING " .. ADMIN_A,
  peek_reset_token = "SELECT t.admin_id, a.email, a.name FROM one_time_tokens t"
    .. " JOIN admins a ON a.id = t.admin_id"
    .. " WHERE t.token_hash = $1::text AND t.kind = 'reset' AND t.used_at IS NULL"
    .. " AND t.expires_at > now() AND t.email = a.email",
  use_reset_token = "UPDATE one_time_tokens SET used_at = now()"
    .. " WHERE token_hash = $1::text AND kind = 'reset' AND used_at IS NULL AND expires_at > now()"
    .. " RETURNING admin_id, email",

  -- sessions: one per login, a family of refresh tokens of which only the
  -- current one (refresh_jti) is accepted
  create_session = "INSERT INTO sessions (admin_id, refresh_jti, expires_at)"
    .. " VALUES ($1::bigint, $2::text, now() + " .. secs("$3") .. ") RETURNING id",
  -- the access check; $3, when not null, is a user read in the same statement
  session_admin = "SELECT " .. ADMIN_A .. ", " .. USER_U .. " FROM sessions s JOIN admins a ON a.id = s.admin_id"
    .. " LEFT JOIN users u ON u.id = $3::bigint"
    .. " WHERE s.id = $1::bigint AND s.admin_id = $2::bigint AND s.revoked_at IS NULL AND s.expires_at > now()",
  -- extended by $5 seconds, but never past $6 seconds from the login
  -- (SESSION_MAX_AGE_S); ttl: the seconds the session has left
  rotate_session = "WITH s AS ("
    .. "UPDATE sessions SET refresh_jti = $4::text, last_used_at = now(),"
    .. " expires_at = least(now() + " .. secs("$5") .. ", created_at + " .. secs("$6") .. ")"
    .. " WHERE id = $1::bigint AND admin_id = $2::bigint AND refresh_jti = $3::text"
    .. " AND revoked_at IS NULL AND expires_at > now()"
    .. " RETURNING admin_id, ceil(extract(epoch FROM expires_at - now()))::integer AS ttl)"
    .. " SELECT " .. ADMIN_A .. ", s.ttl FROM admins a JOIN s ON s.admin_id = a.id",
  revoke_session = "UPDATE sessions SET revoked_at = now()"
    .. " WHERE id = $1::bigint AND revoked_at IS NULL RETURNING id",
  revoke_sessions = "UPDATE sessions SET revoked_at = now()"
    .. " WHERE admin_id = $1::bigint AND revoked_at IS NULL AND ($2::bigint IS NULL OR id <> $2::bigint)",

  -- rate limits: a fixed window per (kind, key), counted in the database so
  -- that every worker and replica sees the same count
  rate_hit = RATE_HIT,
  rate_clear = "DELETE FROM rate_limits WHERE kind = $1::text AND key = $2::text",
  rate_take_back = "UPDATE rate_limits SET count = count - 1 WHERE kind = $1::text AND key = $2::text AND count > 0",
  -- A mail asked for by address (reset, confirmation resend), in one
  -- statement whether or not the address is known, so that both cost the
  -- same round trip and the same commit: counts the request ($1 kind, $2
  -- email, $3 window) and, when it is within $7 and the address is an
  -- admin's (for a confirmation: an unconfirmed one), stores a token ($4
  -- kind, $5 hash, $6 ttl). The row: count, retry_after, and the admin's
  -- id, email and name when a token was stored.
  mail_request = "WITH hit AS (" .. RATE_HIT .. "),"
    .. " t AS (INSERT INTO one_time_tokens (kind, token_hash, admin_id, email, expires_at)"
    .. " SELECT $4::text, $5::text, a.id, a.email, now() + " .. secs("$6") .. " FROM admins a, hit"
    .. " WHERE a.email = $2::text AND hit.count <= $7::integer AND ($4::text <> 'confirm' OR NOT a.confirmed)"
    .. " RETURNING admin_id)"
    .. " SELECT hit.count, hit.retry_after, a.id, a.email, a.name FROM hit"
    .. " LEFT JOIN t ON true LEFT JOIN admins a ON a.id = t.admin_id",

  -- users
  create_user = "INSERT INTO users (email, name, active, created_by)"
    .. " VALUES ($1::text, $2::text, $3::boolean, $4::bigint) RETURNING " .. USER,
  user_by_id = "SELECT " .. USER .. " FROM users WHERE id = $1::bigint",
  update_user = "UPDATE users SET"
    .. " email = coalesce($2::text, email),"
    .. " name = CASE WHEN $3::boolean THEN $4::text ELSE name END,"
    .. " active = coalesce($5::boolean, active),"
    .. " updated_at = now()"
    .. " WHERE id = $1::bigint RETURNING " .. USER,
  delete_user = "DELETE FROM users WHERE id = $1::bigint RETURNING " .. USER,
  -- GET /users: $1 cursor, $2 rows (a page and one), $3 a contains pattern
  -- (validate.contains_pattern: a backslash escapes, LIKE's default). Three
  -- statements, chosen by Store:list_users; docs/performance.md, "Searching
  -- users".
  list_users = "SELECT " .. USER .. " FROM users WHERE id > $1::bigint ORDER BY id LIMIT $2::integer",
  -- q with 3 letters or digits in a row (a trigram for migrations/0006's
  -- indexes). The plan's shape is written out, not left to the planner: the
  -- statement is prepared, and a generic plan (PostgreSQL's choice after five
  -- runs) knows nothing of q and walks the primary key, the whole table when
  -- q is rare. So, in order, each arm running only when the ones before it
  -- did not give the page:
  --   near   a full page among the next SEARCH_NEAR users past the cursor
  --          (a common q: stops as soon as the page is full);
  --   found  else every match, when the trigram indexes find fewer than
  --          SEARCH_FOUND in all (a rare q): sorted, past the cursor;
  --   walk   else the primary key walked from the cursor with the filter: at
  --          least SEARCH_FOUND matches exist, so a page is found within
  --          about a page x table size / SEARCH_FOUND rows.
  list_users_search = "WITH near AS (SELECT " .. USER .. " FROM (SELECT " .. USER .. " FROM users"
    .. " WHERE id > $1::bigint ORDER BY id LIMIT " .. SEARCH_NEAR .. ") AS w WHERE " .. USER_MATCHES
    .. " ORDER BY id LIMIT $2::integer),"
    .. " found AS MATERIALIZED (SELECT " .. USER .. " FROM users WHERE " .. USER_MATCHES
    .. " LIMIT " .. SEARCH_FOUND .. ")"
    .. " (SELECT " .. USER .. " FROM near WHERE (SELECT count(id) FROM near) = $2::integer)"
    .. " UNION ALL (SELECT " .. USER .. " FROM found WHERE id > $1::bigint"
    .. " AND (SELECT count(id) FROM found) < " .. SEARCH_FOUND .. " ORDER BY id LIMIT $2::integer)"
    .. " UNION ALL (SELECT " .. USER .. " FROM users WHERE (SELECT count(id) FROM found) = " .. SEARCH_FOUND
    .. " AND id > $1::bigint AND " .. USER_MATCHES .. " ORDER BY id LIMIT $2::integer)"
    .. " LIMIT $2::integer",
  -- q without 3 letters or digits in a row: no trigram, no index; the
  -- primary key walked from the cursor until the page is full.
  list_users_scan = "SELECT " .. USER .. " FROM users WHERE id > $1::bigint AND " .. USER_MATCHES
    .. " ORDER BY id LIMIT $2::integer",
}

-- ---- errors ------------------------------------------------------------------

-- Unique constraints (migrations/) and the field each one is about.
local CONFLICTS = {
  admins_email_key = {field = "email", message = "is already in use"},
  admins_name_key = {field = "name", message = "is already taken"},
  users_email_key = {field = "email", message = "is already in use"},
}

local MSG_CONFLICT = "already in use"

local function describe(err)
  if type(err) ~= "table" then return tostring(err) end
  return format("%s (sqlstate %s, constraint %s): %s", tostring(err.code), tostring(err.sqlstate),
                tostring(err.constraint), tostring(err.message))
end

-- The one mapping from a database error to what the client gets. An error
-- that is already a response (from a transaction's function) passes through.
local function map_error(err)
  if type(err) == "table" and err.status and err.body then return err end
  local code = type(err) == "table" and err.code
  if code == "unavailable" or code == "timeout" then
    log.warn("database unavailable", {error = describe(err)})
    return http.error("unavailable")
  end
  if type(err) == "table" and err.sqlstate == "23505" then
    local known = CONFLICTS[err.constraint]
    if known then
      return http.error("conflict", format("%s %s", known.field, known.message),
                        {[known.field] = known.message})
    end
    return http.error("conflict", MSG_CONFLICT)
  end
  error("database error: " .. describe(err), 0)
end

-- ---- the store ------------------------------------------------------------------

local Store = {}
Store.__index = Store

local function new(query)
  return setmetatable({query = query}, Store)
end

local function opt(v)
  if v == nil then return null end
  return v
end

-- Runs the named statement: rows, or nil and an error response.
function Store:run(name, ...)
  local sql = SQL[name]
  if not sql then error("no such statement: " .. tostring(name), 2) end
  local rows, err = self.query(sql, ...)
  if not rows then return nil, map_error(err) end
  return rows
end

-- The first row (or nil), or nil and an error response.
function Store:one(name, ...)
  local rows, err = self:run(name, ...)
  if not rows then return nil, err end
  return rows[1]
end

-- fn(tx) with tx a store whose statements run in one transaction. Returns
-- fn's results, or nil and an error response.
function Store.transaction(_, fn)
  local results = {n = 0}
  local ok, err = db.transaction(function(tx)
    results = {n = 0}
    local function keep(...)
      results = {n = select("#", ...), ...}
      return ...
    end
    return keep(fn(new(tx.query)))
  end)
  if ok == nil and err ~= nil then return nil, map_error(err) end
  return unpack(results, 1, results.n)
end

-- true, or nil and an error response (503).
function Store.ready(_)
  local ok, err = db.ready()
  if ok then return true end
  log.warn("database not ready", {error = describe(err)})
  return nil, http.error("unavailable")
end

-- ---- admins -----------------------------------------------------------------

function Store:create_admin(email, name, password_hash)
  return self:one("create_admin", email, name, password_hash)
end

function Store:find_admin(id)
  return self:one("admin_by_id", id)
end

-- true when neither `email` nor `name` belongs to an admin, else nil and the
-- 409 the unique indexes would give (a registration asks before it hashes;
-- the indexes still decide a race).
function Store:admin_free(email, name)
  local row, err = self:one("admin_taken", email, name)
  if not row then return nil, err end
  local fields, first = {}, nil
  for _, c in ipairs({{row.email, "admins_email_key"}, {row.name, "admins_name_key"}}) do
    if c[1] == true then
      local known = CONFLICTS[c[2]]
      fields[known.field] = known.message
      first = first or format("%s %s", known.field, known.message)
    end
  end
  if not first then return true end
  return nil, http.error("conflict", first, fields)
end

-- For a login: {admin = admin, password_hash = hash}, or nil (no such email).
function Store:admin_login(email)
  local row, err = self:one("admin_login", email)
  if not row then return nil, err end
  local hash = row.password_hash
  row.password_hash = nil
  return {admin = row, password_hash = hash}
end

function Store:password_hash(admin_id)
  local row, err = self:one("admin_password_hash", admin_id)
  if not row then return nil, err end
  return row.password_hash
end

-- changes: {name=, email=, password_hash=}, each optional. A new email
-- makes the admin unconfirmed.
function Store:update_admin(id, changes)
  return self:one("update_admin", id, opt(changes.name), opt(changes.email), opt(changes.password_hash))
end

-- Replaces the hash only if it is still `old_hash` (a concurrent password
-- change wins).
function Store:rehash_password(id, old_hash, new_hash)
  return self:run("rehash_password", id, old_hash, new_hash)
end

-- After a reset through a link mailed to `email`: sets the hash and, when
-- that is still the admin's address, marks it confirmed.
function Store:reset_password(id, password_hash, email)
  return self:one("reset_password", id, password_hash, email)
end

function Store:delete_admin(id)
  return self:one("delete_admin", id)
end

-- Up to `limit` admins with id > after, optionally only those whose email or
-- name contains `pattern` (a LIKE pattern, validate.contains_pattern).
function Store:list_admins(after, limit, pattern)
  return self:run("list_admins", after or "0", tostring(limit), opt(pattern or nil))
end

-- ---- one-time tokens ------------------------------------------------------------

function Store:create_token(kind, token_hash, admin_id, email, ttl)
  return self:run("create_token", kind, token_hash, admin_id, email, ttl)
end

-- Drops the unused tokens of an admin (of one kind, or all when kind is nil).
function Store:drop_unused_tokens(admin_id, kind)
  return self:run("drop_unused_tokens", admin_id, opt(kind))
end

-- Uses a confirmation token: the confirmed admin, or nil when the token is
-- unknown, used, expired, or for an address the admin no longer has.
function Store:confirm_admin(token_hash)
  return self:one("confirm_admin", token_hash)
end

-- {admin_id, email, name} of a usable reset token, without using it.
function Store:peek_reset_token(token_hash)
  return self:one("peek_reset_token", token_hash)
end

-- Uses a reset token: {admin_id, email}, or nil.
function Store:use_reset_token(token_hash)
  return self:one("use_reset_token", token_hash)
end

-- ---- sessions -----------------------------------------------------------------

-- A new session; returns its id.
function Store:create_session(admin_id, refresh_jti, ttl)
  local row, err = self:one("create_session", admin_id, refresh_jti, ttl)
  if err then return nil, err end
  return tostring(row.id)
end

-- The admin of a live session (the access check), or nil. With `user_id`
-- the same statement also reads that user: the third result is its row,
-- false when there is no such user, nil when the statement did not say
-- (the in-memory database of the route specs reads no user).
function Store:session_admin(sid, admin_id, user_id)
  local row, err = self:one("session_admin", sid, admin_id, opt(user_id))
  if not row then return nil, err end
  local user
  if user_id ~= nil and row.u_id ~= nil then
    user = false
    if row.u_id ~= null then
      user = {}
      for i, f in ipairs(USER_FIELDS) do user[f] = row[USER_U_FIELDS[i]] end
    end
  end
  for _, f in ipairs(USER_U_FIELDS) do row[f] = nil end
  return row, nil, user
end

-- Moves a live session from refresh token `old_jti` to `new_jti` and extends
-- it by `ttl`, never past `max_age` from its login: the admin and the
-- seconds the session has left, or nil when the session is not live or
-- `old_jti` is not its current token (reuse).
function Store:rotate_session(sid, admin_id, old_jti, new_jti, ttl, max_age)
  local row, err = self:one("rotate_session", sid, admin_id, old_jti, new_jti, ttl, max_age)
  if not row then return nil, err end
  local left = row.ttl
  row.ttl = nil
  return row, nil, left
end

-- Revokes one session: its id when it was live, else nil.
function Store:revoke_session(sid)
  return self:one("revoke_session", sid)
end

-- Revokes every live session of an admin, but `except_sid` when given.
function Store:revoke_sessions(admin_id, except_sid)
  return self:run("revoke_sessions", admin_id, opt(except_sid))
end

-- ---- rate limits -------------------------------------------------------------

-- Counts one event: count in the current window, seconds until it ends.
function Store:rate_hit(kind, key, window)
  local row, err = self:one("rate_hit", kind, key, window)
  if err then return nil, err end
  return row.count, row.retry_after
end

function Store:rate_clear(kind, key)
  return self:run("rate_clear", kind, key)
end

-- Takes back one counted event (the attempt turned out not to count).
function Store:rate_take_back(kind, key)
  return self:run("rate_take_back", kind, key)
end

-- The mail_request statement (above): count, retry_after, and the admin
-- {id, email, name} when a token was stored, else nil.
function Store:mail_request(rate_kind, email, window, token_kind, token_hash, ttl, limit)
  local row, err = self:one("mail_request", rate_kind, email, window, token_kind, token_hash, ttl, limit)
  if not row then return nil, err end
  local admin = row.id ~= nil and row.id ~= null and {id = row.id, email = row.email, name = row.name} or nil
  return row.count, row.retry_after, admin
end

-- ---- users ----------------------------------------------------------------------

function Store:create_user(email, name, active, created_by)
  return self:one("create_user", email, opt(name), active, created_by)
end

function Store:find_user(id)
  return self:one("user_by_id", id)
end

-- changes: {email=, name= (null clears), active=}; absent keys stay.
function Store:update_user(id, changes)
  local set_name = changes.name ~= nil
  return self:one("update_user", id, opt(changes.email), set_name, opt(changes.name), opt(changes.active))
end

function Store:delete_user(id)
  return self:one("delete_user", id)
end

-- A page of users past `after`; `pattern` (validate.contains_pattern), when
-- given, picks the search statement that suits it: a pattern with a
-- trigram (3 letters or digits in a row; escapes are neither) can use the
-- trigram indexes, a shorter one cannot.
function Store:list_users(after, limit, pattern)
  after, limit = after or "0", tostring(limit)
  if not pattern then return self:run("list_users", after, limit) end
  return self:run(find(pattern, "%w%w%w") and "list_users_search" or "list_users_scan", after, limit, pattern)
end

-- ---- module -------------------------------------------------------------------

local store = new(db.query)
store.SQL = SQL
store.CONFLICTS = CONFLICTS
store.map_error = map_error
return store
