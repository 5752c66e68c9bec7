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
-- users a q without a trigram reads per page at most (list_users_scan)
local SCAN_WINDOW = 20000

-- Deletes at most $2 rows of `tbl` matching `past` (its retention is over),
-- by row address, so that one batch locks only its rows: the count.
local function sweep(tbl, past)
  return format("WITH d AS (DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT ctid FROM %s WHERE %s LIMIT $2::integer))"
    .. " RETURNING 1 AS row) SELECT count(row)::integer AS deleted FROM d", tbl, tbl, past)
end

-- Counts one event of ($1 kind, $2 key) in a fixed window of $3 seconds (a
-- window older than that starts again at 1); returns count, retry_after.
local RATE_HIT = "INSERT INTO rate_limits AS r (kind, key, window_start, count) VALUES ($1::text, $2::text, now(), 1)"
  .. " ON CONFLICT (kind, key) DO UPDATE SET"
  .. " window_start = CASE WHEN r.window_start <= now() - " .. secs("$3") .. " THEN now() ELSE r.window_start END,"
  .. " count = CASE WHEN r.window_start <= now() - " .. secs("$3") .. " THEN 1 ELSE r.count + 1 END"
  .. " RETURNING r.count, ceil(extract(epoch FROM r.window_start + " .. secs("$3") .. " - now()))::integer AS retry_after"

-- ---- the audit trail (lib/audit.lua, migrations/0007) ----------------------------
-- A change and its event are one statement where the change is one: a CTE
-- `ev` inserts the event from the rows the change returned, and the column
-- `audit` brings the events back (a JSON array, or null) for the log line
-- written after the commit. Each such statement ends with the audit
-- context's three parameters: actor_id, request_id, client.
local AUDIT = "id, at, actor_id, action, target_type, target_id, request_id, client, detail"
local AUDIT_INTO = "INSERT INTO audit_events (actor_id, action, target_type, target_id, request_id, client, detail) "

local function audit_cte(select_sql)
  return "ev AS (" .. AUDIT_INTO .. select_sql .. " RETURNING " .. AUDIT .. ")"
end

local AUDIT_OUT = "(SELECT jsonb_agg(to_jsonb(ev) ORDER BY ev.id) FROM ev) AS audit"

local ADMIN_COLUMNS = {"id", "email", "name", "confirmed", "created_at", "updated_at"}

-- "p.id, p.email, ...": the columns of `list` qualified by `p`.
local function columns(p, list)
  local out = {}
  for i, c in ipairs(list) do out[i] = p .. "." .. c end
  return table.concat(out, ", ")
end

-- GET /audit: one statement per combination of filters (a bit each, in
-- this order), so that each is planned with the index its filters want
-- rather than one generic plan for all. $1 the id to continue below
-- (cursor; 2^63-1 for the first page), $2 the limit, then the filters'
-- parameters in order.
local AUDIT_FILTERS = {
  {"actor", "actor_id = %s::bigint", 1},
  {"action", "action = %s::text", 1},
  {"target", "target_type = %s::text AND target_id = %s::bigint", 2},
  {"since", "at >= %s::timestamptz", 1},
  {"until", "at < %s::timestamptz", 1},
}

local function audit_list_name(mask)
  local bits = {}
  for i = 1, #AUDIT_FILTERS do bits[i] = mask[i] and "1" or "0" end
  return "list_audit_" .. table.concat(bits)
end

local function audit_list_sql(mask)
  local where, n = {"id < $1::bigint"}, 2
  for i, f in ipairs(AUDIT_FILTERS) do
    if mask[i] then
      local params = {}
      for j = 1, f[3] do params[j] = "$" .. (n + j) end
      n = n + f[3]
      where[#where + 1] = format(f[2], unpack(params))
    end
  end
  return "SELECT " .. AUDIT .. " FROM audit_events WHERE " .. table.concat(where, " AND ")
    .. " ORDER BY id DESC LIMIT $2::integer"
end

-- `moonkeep import` (tools/import.lua, docs/import.md). What table `tbl` has
-- for a batch of source rows ($1: a JSON array of {id, email[, name]}):
-- the email of the row with the same id, the row that has the email (and
-- what `extra` selects), and the row an earlier import made of it (its
-- `action` event, found by source id and email).
local function import_lookup_sql(tbl, action, extra, extra_columns)
  return "SELECT e.id AS source_id,"
    .. " (SELECT t.email FROM " .. tbl .. " t WHERE t.id = e.id) AS id_email,"
    .. " (SELECT t.id FROM " .. tbl .. " t WHERE t.email = e.email) AS email_owner," .. extra
    .. " (SELECT v.target_id FROM audit_events v WHERE v.action = '" .. action .. "'"
    .. " AND v.detail ->> 'source_id' = e.id::text AND v.detail ->> 'email' = e.email"
    .. " ORDER BY v.id DESC LIMIT 1) AS imported_as"
    .. " FROM jsonb_to_recordset($1::jsonb) AS e(id bigint, email text" .. extra_columns .. ")"
end

-- Moves the id sequence of `tbl` past $1 (the largest id an import keeps)
-- and past every id in the table, never back. setval is not
-- transactional: a rolled-back import leaves the sequence moved, which
-- costs unused ids only.
local function import_sequence_sql(tbl)
  return "SELECT setval(s.seq, v.target) FROM"
    .. " (SELECT pg_get_serial_sequence('" .. tbl .. "', 'id')::regclass AS seq) s,"
    .. " LATERAL (SELECT greatest($1::bigint, (SELECT coalesce(max(id), 0) FROM " .. tbl .. ")) AS target) v"
    .. " WHERE v.target > coalesce(pg_sequence_last_value(s.seq), 0)"
end

local SQL = {
  -- admins
  -- Emails arrive in their canonical form (validate.email) and are compared
  -- as stored: no lower() here (migrations/0004).
  create_admin = "WITH a AS (INSERT INTO admins (email, name, password_hash) VALUES ($1::text, $2::text, $3::text)"
    .. " RETURNING " .. ADMIN .. "), "
    .. audit_cte("SELECT $4::bigint, 'admin.registered', 'admin', a.id, $5::text, $6::text,"
      .. " jsonb_build_object('email', a.email, 'name', a.name) FROM a")
    .. " SELECT " .. ADMIN_A .. ", " .. AUDIT_OUT .. " FROM a",
  admin_by_id = "SELECT " .. ADMIN .. " FROM admins WHERE id = $1::bigint",
  admin_login = "SELECT " .. ADMIN .. ", password_hash FROM admins WHERE email = $1::text",
  -- which of an email and a name are taken (a registration asks before it hashes)
  admin_taken = "SELECT coalesce(bool_or(email = $1::text), false) AS email,"
    .. " coalesce(bool_or(lower(name) = lower($2::text)), false) AS name"
    .. " FROM admins WHERE email = $1::text OR lower(name) = lower($2::text)",
  admin_password_hash = "SELECT password_hash FROM admins WHERE id = $1::bigint",
  -- the row locked first (o), so that the old values the events record are
  -- the ones this update replaced, whatever ran concurrently
  update_admin = "WITH o AS (SELECT id, email, name FROM admins WHERE id = $1::bigint FOR UPDATE),"
    .. " a AS (UPDATE admins t SET"
    .. " name = coalesce($2::text, t.name),"
    .. " email = coalesce($3::text, t.email),"
    .. " confirmed = CASE WHEN $3::text IS NOT NULL AND $3::text <> t.email THEN false ELSE t.confirmed END,"
    .. " password_hash = coalesce($4::text, t.password_hash),"
    .. " updated_at = now()"
    .. " FROM o WHERE t.id = o.id RETURNING " .. columns("t", ADMIN_COLUMNS)
    .. ", o.email AS old_email, o.name AS old_name), "
    .. audit_cte("SELECT $5::bigint, e.action, 'admin', a.id, $6::text, $7::text, e.detail FROM a CROSS JOIN LATERAL"
      .. " (VALUES ('admin.updated', CASE WHEN a.name IS DISTINCT FROM a.old_name THEN jsonb_build_object('changes',"
      .. " jsonb_build_object('name', jsonb_build_object('old', a.old_name, 'new', a.name))) END),"
      .. " ('admin.email_changed', CASE WHEN a.email IS DISTINCT FROM a.old_email THEN jsonb_build_object('changes',"
      .. " jsonb_build_object('email', jsonb_build_object('old', a.old_email, 'new', a.email))) END))"
      .. " AS e(action, detail) WHERE e.detail IS NOT NULL")
    .. " SELECT " .. ADMIN_A .. ", " .. AUDIT_OUT .. " FROM a",
  rehash_password = "UPDATE admins SET password_hash = $3::text WHERE id = $1::bigint AND password_hash = $2::text",
  reset_password = "UPDATE admins SET password_hash = $2::text,"
    .. " confirmed = confirmed OR email = $3::text, updated_at = now()"
    .. " WHERE id = $1::bigint RETURNING id",
  delete_admin = "WITH d AS (DELETE FROM admins WHERE id = $1::bigint RETURNING id, email, name), "
    .. audit_cte("SELECT $2::bigint, 'admin.deleted', 'admin', d.id, $3::text, $4::text,"
      .. " jsonb_build_object('email', d.email, 'name', d.name) FROM d")
    .. " SELECT d.id, " .. AUDIT_OUT .. " FROM d",
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
    .. " RETURNING admin_id, email),"
    .. " c AS (UPDATE admins a SET confirmed = true,"
    .. " updated_at = CASE WHEN a.confirmed THEN a.updated_at ELSE now() END"
    .. " FROM t WHERE a.id = t.admin_id AND a.email = t.email RETURNING " .. ADMIN_A .. "), "
    .. audit_cte("SELECT $2::bigint, 'admin.confirmed', 'admin', c.id, $3::text, $4::text,"
      .. " jsonb_build_object('email', c.email) FROM c")
    .. " SELECT " .. columns("c", ADMIN_COLUMNS) .. ", " .. AUDIT_OUT .. " FROM c",
  peek_reset_token = "SELECT t.admin_id, a.email, a.name FROM one_time_tokens t"
    .. " JOIN admins a ON a.id = t.admin_id"
    .. " WHERE t.token_hash = $1::text AND t.kind = 'reset' AND t.used_at IS NULL"
    .. " AND t.expires_at > now() AND t.email = a.email",
  use_reset_token = "UPDATE one_time_tokens SET used_at = now()"
    .. " WHERE token_hash = $1::text AND kind = 'reset' AND used_at IS NULL AND expires_at > now()"
    .. " RETURNING admin_id, email",

  -- sessions: one per login, a family of refresh tokens of which only the
  -- current one (refresh_jti) is accepted
  -- a login: the session and its admin.login event ($7: the hash was
  -- renewed at this login)
  create_session = "WITH s AS (INSERT INTO sessions (admin_id, refresh_jti, expires_at)"
    .. " VALUES ($1::bigint, $2::text, now() + " .. secs("$3") .. ") RETURNING id, admin_id), "
    .. audit_cte("SELECT $4::bigint, 'admin.login', 'admin', s.admin_id, $5::text, $6::text,"
      .. " jsonb_strip_nulls(jsonb_build_object('session_id', s.id, 'rehashed', CASE WHEN $7::boolean THEN true END))"
      .. " FROM s")
    .. " SELECT s.id, " .. AUDIT_OUT .. " FROM s",
  -- the access check; $3, when not null, is a user read in the same
  -- statement. session_admin also reads the admin's row, for the routes
  -- that show or change it; session_live does not: a live session's admin
  -- exists (sessions go with their admin, ON DELETE CASCADE), and most
  -- routes need only its id, which the token carried.
  session_admin = "SELECT " .. ADMIN_A .. ", " .. USER_U .. " FROM sessions s JOIN admins a ON a.id = s.admin_id"
    .. " LEFT JOIN users u ON u.id = $3::bigint"
    .. " WHERE s.id = $1::bigint AND s.admin_id = $2::bigint AND s.revoked_at IS NULL AND s.expires_at > now()",
  session_live = "SELECT s.id, " .. USER_U .. " FROM sessions s LEFT JOIN users u ON u.id = $3::bigint"
    .. " WHERE s.id = $1::bigint AND s.admin_id = $2::bigint AND s.revoked_at IS NULL AND s.expires_at > now()",
  -- extended by $5 seconds, but never past $6 seconds from the login
  -- (SESSION_MAX_AGE_S); ttl: the seconds the session has left
  rotate_session = "WITH s AS ("
    .. "UPDATE sessions SET refresh_jti = $4::text, last_used_at = now(),"
    .. " expires_at = least(now() + " .. secs("$5") .. ", created_at + " .. secs("$6") .. ")"
    .. " WHERE id = $1::bigint AND admin_id = $2::bigint AND refresh_jti = $3::text"
    .. " AND revoked_at IS NULL AND expires_at > now()"
    .. " RETURNING id, admin_id, ceil(extract(epoch FROM expires_at - now()))::integer AS ttl), "
    .. audit_cte("SELECT $7::bigint, 'admin.refreshed', 'admin', s.admin_id, $8::text, $9::text,"
      .. " jsonb_build_object('session_id', s.id) FROM s")
    .. " SELECT " .. ADMIN_A .. ", s.ttl, " .. AUDIT_OUT .. " FROM admins a JOIN s ON s.admin_id = a.id",
  -- $2: the action to record (admin.logout, admin.refresh_reuse), or null
  revoke_session = "WITH r AS (UPDATE sessions SET revoked_at = now()"
    .. " WHERE id = $1::bigint AND revoked_at IS NULL RETURNING id, admin_id), "
    .. audit_cte("SELECT $3::bigint, $2::text, 'admin', r.admin_id, $4::text, $5::text,"
      .. " jsonb_build_object('session_id', r.id) FROM r WHERE $2::text IS NOT NULL")
    .. " SELECT r.id, " .. AUDIT_OUT .. " FROM r",
  -- $3: the action to record (admin.logout_all, admin.password_changed,
  -- admin.password_reset), or null; one row: how many sessions ended
  revoke_sessions = "WITH r AS (UPDATE sessions SET revoked_at = now()"
    .. " WHERE admin_id = $1::bigint AND revoked_at IS NULL AND ($2::bigint IS NULL OR id <> $2::bigint)"
    .. " RETURNING id), "
    .. audit_cte("SELECT $4::bigint, $3::text, 'admin', $1::bigint, $5::text, $6::text,"
      .. " jsonb_build_object('sessions_ended', (SELECT count(r.id) FROM r)) WHERE $3::text IS NOT NULL")
    .. " SELECT (SELECT count(r.id) FROM r) AS ended, " .. AUDIT_OUT,

  -- rate limits: a fixed window per (kind, key), counted in the database so
  -- that every worker and replica sees the same count
  rate_hit = RATE_HIT,
  -- A login attempt counted (rate_hit's login_failure) in the same
  -- statement as what the audit trail keeps of it once the email is over
  -- its limit ($4): not an event per refused attempt, but one per window,
  -- whose detail.refused counts them (migrations/0007, window_key).
  login_hit = "WITH hit AS (" .. RATE_HIT .. ", r.window_start), "
    .. "ev AS (INSERT INTO audit_events AS e"
    .. " (actor_id, action, target_type, target_id, request_id, client, detail, window_key)"
    .. " SELECT $5::bigint, 'admin.login_failed', 'admin', (SELECT a.id FROM admins a WHERE a.email = $2::text),"
    .. " $6::text, $7::text, jsonb_build_object('email', $2::text, 'reason', 'rate_limited', 'refused', 1,"
    .. " 'window_start', hit.window_start),"
    .. " $1::text || ':' || $2::text || ':' || extract(epoch FROM hit.window_start)::text"
    .. " FROM hit WHERE hit.count > $4::integer"
    .. " ON CONFLICT (window_key) WHERE window_key IS NOT NULL DO UPDATE"
    .. " SET detail = jsonb_set(e.detail, '{refused}', to_jsonb((e.detail ->> 'refused')::bigint + 1))"
    .. " RETURNING " .. AUDIT .. ")"
    -- only a new window's event is logged; the attempts it then counts are not
    .. " SELECT hit.count, hit.retry_after,"
    .. " (SELECT jsonb_agg(to_jsonb(ev)) FROM ev WHERE ev.detail ->> 'refused' = '1') AS audit FROM hit",
  rate_clear = "DELETE FROM rate_limits WHERE kind = $1::text AND key = $2::text",
  rate_take_back = "UPDATE rate_limits SET count = count - 1 WHERE kind = $1::text AND key = $2::text AND count > 0",
  -- A mail asked for by address (reset, confirmation resend), in one
  -- statement whether or not the address is known, so that both cost the
  -- same round trip and the same commit: counts the request ($1 kind, $2
  -- email, $3 window) and, when it is within $7 and the address is an
  -- admin's (for a confirmation: an unconfirmed one), stores a token ($4
  -- kind, $5 hash, $6 ttl) and queues its mail ($8 the raw token, $9 the
  -- mail group). The row:
  -- count, retry_after, and the admin's id when a token was stored.
  mail_request = "WITH hit AS (" .. RATE_HIT .. "),"
    .. " t AS (INSERT INTO one_time_tokens (kind, token_hash, admin_id, email, expires_at)"
    .. " SELECT $4::text, $5::text, a.id, a.email, now() + " .. secs("$6") .. " FROM admins a, hit"
    .. " WHERE a.email = $2::text AND hit.count <= $7::integer AND ($4::text <> 'confirm' OR NOT a.confirmed)"
    .. " RETURNING admin_id, email),"
    .. " m AS (INSERT INTO mail_outbox (kind, to_addr, name, token, ttl_s, mail_group)"
    .. " SELECT $4::text, t.email, a.name, $8::text, $6::integer, $9::text FROM t JOIN admins a ON a.id = t.admin_id)"
    .. " SELECT hit.count, hit.retry_after, t.admin_id FROM hit LEFT JOIN t ON true",

  -- the mail outbox (migrations/0005_mail_outbox.sql, lib/outbox.lua)
  queue_mail = "INSERT INTO mail_outbox (kind, to_addr, name, token, ttl_s, mail_group)"
    .. " VALUES ($1::text, $2::text, $3::text, $4::text, $5::integer, $6::text)",
  -- the oldest due row of mail group $2, leased for $1 seconds (its due_at
  -- moves to the lease's end, so a claim by a worker that died runs out by
  -- itself)
  claim_mail = "UPDATE mail_outbox o SET due_at = now() + " .. secs("$1") .. ", attempts = o.attempts + 1"
    .. " FROM (SELECT id FROM mail_outbox WHERE mail_group = $2::text AND status = 'due' AND due_at <= now()"
    .. " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED) c"
    .. " WHERE o.id = c.id RETURNING o.id, o.message_id, o.kind, o.to_addr, o.name, o.token, o.ttl_s, o.attempts",
  mail_sent = "UPDATE mail_outbox SET status = 'sent', done_at = now(), token = NULL, last_error = NULL"
    .. " WHERE id = $1::bigint AND status = 'due'",
  -- the next attempt in $2 seconds, times a random factor in [0.8, 1.2) so
  -- that mails that failed together do not all come back together
  mail_retry = "UPDATE mail_outbox SET due_at = now() + make_interval(secs => $2::float8 * (0.8 + 0.4 * random())),"
    .. " last_error = $3::text WHERE id = $1::bigint AND status = 'due'",
  mail_failed = "UPDATE mail_outbox SET status = 'failed', done_at = now(), token = NULL, last_error = $2::text"
    .. " WHERE id = $1::bigint AND status = 'due'",
  -- depth (due rows, also those waiting for a retry or leased), and the age
  -- in seconds of the oldest one whose time has come
  outbox_stats = "SELECT count(id)::bigint AS depth,"
    .. " coalesce(extract(epoch FROM now() - min(due_at) FILTER (WHERE due_at <= now())), 0)::float8 AS oldest_due_s"
    .. " FROM mail_outbox WHERE mail_group = $1::text AND status = 'due'",

  -- retention (lib/retention.lua): one batch of at most $2 rows past $1
  -- seconds of retention, under the sweeper's advisory lock ($1)
  sweep_lock = "SELECT pg_try_advisory_xact_lock($1::bigint) AS locked",
  sweep_sessions = sweep("sessions", "expires_at < now() - " .. secs("$1")
    .. " OR revoked_at < now() - " .. secs("$1")),
  sweep_tokens = sweep("one_time_tokens", "expires_at < now() - " .. secs("$1")
    .. " OR used_at < now() - " .. secs("$1")),
  sweep_rate_limits = sweep("rate_limits", "window_start < now() - " .. secs("$1")),
  sweep_mail = sweep("mail_outbox", "status <> 'due' AND done_at < now() - " .. secs("$1")),
  sweep_audit = sweep("audit_events", "at < now() - " .. secs("$1")),

  -- users
  create_user = "WITH u AS (INSERT INTO users (email, name, active, created_by)"
    .. " VALUES ($1::text, $2::text, $3::boolean, $4::bigint) RETURNING " .. USER .. "), "
    .. audit_cte("SELECT $5::bigint, 'user.created', 'user', u.id, $6::text, $7::text,"
      .. " jsonb_build_object('email', u.email, 'name', u.name, 'active', u.active) FROM u")
    .. " SELECT " .. columns("u", USER_FIELDS) .. ", " .. AUDIT_OUT .. " FROM u",
  user_by_id = "SELECT " .. USER .. " FROM users WHERE id = $1::bigint",
  -- as update_admin: the row locked first, so the event's old values are
  -- the replaced ones; an event only when a field changed, naming those
  update_user = "WITH o AS (SELECT id, email, name, active FROM users WHERE id = $1::bigint FOR UPDATE),"
    .. " u AS (UPDATE users t SET"
    .. " email = coalesce($2::text, t.email),"
    .. " name = CASE WHEN $3::boolean THEN $4::text ELSE t.name END,"
    .. " active = coalesce($5::boolean, t.active),"
    .. " updated_at = now()"
    .. " FROM o WHERE t.id = o.id RETURNING " .. columns("t", USER_FIELDS)
    .. ", o.email AS old_email, o.name AS old_name, o.active AS old_active),"
    .. " c AS (SELECT u.id, jsonb_build_object("
    .. "'email', jsonb_build_object('old', u.old_email, 'new', u.email),"
    .. " 'name', jsonb_build_object('old', u.old_name, 'new', u.name),"
    .. " 'active', jsonb_build_object('old', u.old_active, 'new', u.active))"
    .. " - array_remove(ARRAY[CASE WHEN u.email IS NOT DISTINCT FROM u.old_email THEN 'email' END,"
    .. " CASE WHEN u.name IS NOT DISTINCT FROM u.old_name THEN 'name' END,"
    .. " CASE WHEN u.active IS NOT DISTINCT FROM u.old_active THEN 'active' END]::text[], NULL) AS changes FROM u), "
    .. audit_cte("SELECT $6::bigint, 'user.updated', 'user', c.id, $7::text, $8::text,"
      .. " jsonb_build_object('changes', c.changes) FROM c WHERE c.changes <> '{}'::jsonb")
    .. " SELECT " .. columns("u", USER_FIELDS) .. ", " .. AUDIT_OUT .. " FROM u",
  delete_user = "WITH d AS (DELETE FROM users WHERE id = $1::bigint RETURNING " .. USER .. "), "
    .. audit_cte("SELECT $2::bigint, 'user.deleted', 'user', d.id, $3::text, $4::text,"
      .. " jsonb_build_object('email', d.email, 'name', d.name, 'active', d.active, 'created_by', d.created_by) FROM d")
    .. " SELECT " .. columns("d", USER_FIELDS) .. ", " .. AUDIT_OUT .. " FROM d",
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
  -- q without 3 letters or digits in a row: no trigram, no index. At most
  -- SCAN_WINDOW users past the cursor are read, and only until the page is
  -- full (the scan stops there: a common q reads a few dozen rows). When
  -- the page is not full, one more row of nulls says how far the window
  -- reached and how many users it held (scanned_to, scanned): the index's
  -- ids only, and only then (a one-time filter on the page's count).
  list_users_scan = "WITH m AS (SELECT " .. USER .. " FROM (SELECT " .. USER .. " FROM users WHERE id > $1::bigint"
    .. " ORDER BY id LIMIT " .. SCAN_WINDOW .. ") AS w WHERE " .. USER_MATCHES .. " ORDER BY id LIMIT $2::integer)"
    .. " SELECT " .. USER .. ", NULL::bigint AS scanned_to, NULL::bigint AS scanned FROM m"
    .. " UNION ALL SELECT NULL::bigint, NULL::text, NULL::text, NULL::boolean, NULL::bigint, NULL::timestamptz,"
    .. " NULL::timestamptz, max(id), count(id) FROM (SELECT id FROM users WHERE id > $1::bigint ORDER BY id LIMIT "
    .. SCAN_WINDOW .. ") AS e HAVING (SELECT count(id) FROM m) < $2::integer",

  -- the audit trail: events of changes whose statements do not write their
  -- own ($1: a JSON array of lib/audit.lua's events)
  audit_record = AUDIT_INTO .. "SELECT e.actor_id, e.action, e.target_type, e.target_id, e.request_id, e.client,"
    .. " coalesce(e.detail, '{}'::jsonb) FROM jsonb_to_recordset($1::jsonb) AS e(actor_id bigint, action text,"
    .. " target_type text, target_id bigint, request_id text, client text, detail jsonb) RETURNING " .. AUDIT,

  -- `moonkeep import`: the lookups and sequences (above), the rows (below)
  import_admin_lookup = import_lookup_sql("admins", "admin.imported",
    " (SELECT t.id FROM admins t WHERE lower(t.name) = lower(e.name)) AS name_owner,", ", name text"),
  import_user_lookup = import_lookup_sql("users", "user.imported", "", ""),
  import_admins_sequence = import_sequence_sql("admins"),
  import_users_sequence = import_sequence_sql("users"),
  -- One imported row and its *.imported event (actor null, request_id the
  -- run's id): $1 the id to keep, or null for a new one; nothing when any
  -- unique index refuses the row (taken meanwhile).
  import_admin = "WITH a AS (INSERT INTO admins (id, email, name, password_hash, confirmed)"
    .. " VALUES (coalesce($1::bigint, nextval(pg_get_serial_sequence('admins', 'id')::regclass)),"
    .. " $2::text, $3::text, $4::text, true) ON CONFLICT DO NOTHING RETURNING id, email, name), "
    .. audit_cte("SELECT NULL, 'admin.imported', 'admin', a.id, $6::text, NULL,"
      .. " jsonb_build_object('source_id', $5::bigint, 'email', a.email, 'name', a.name) FROM a")
    .. " SELECT a.id, " .. AUDIT_OUT .. " FROM a",
  import_user = "WITH u AS (INSERT INTO users (id, email, name, active, created_by)"
    .. " VALUES (coalesce($1::bigint, nextval(pg_get_serial_sequence('users', 'id')::regclass)),"
    .. " $2::text, NULL, $3::boolean, NULL) ON CONFLICT DO NOTHING RETURNING id, email, active), "
    .. audit_cte("SELECT NULL, 'user.imported', 'user', u.id, $5::text, NULL,"
      .. " jsonb_build_object('source_id', $4::bigint, 'email', u.email, 'active', u.active) FROM u")
    .. " SELECT u.id, " .. AUDIT_OUT .. " FROM u",
}

-- GET /audit's statements, every combination of AUDIT_FILTERS
for m = 0, 2 ^ #AUDIT_FILTERS - 1 do
  local mask = {}
  for i = 1, #AUDIT_FILTERS do mask[i] = math.floor(m / 2 ^ (i - 1)) % 2 == 1 end
  SQL[audit_list_name(mask)] = audit_list_sql(mask)
end

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

-- ---- the audit context ------------------------------------------------------------

local ANONYMOUS = {}

-- The three parameters every recording statement ends with (lib/audit.lua's
-- context; nil: nobody, from nowhere, as in a spec that does not care).
local function who(ctx)
  ctx = ctx or ANONYMOUS
  local actor, request_id, client = ctx.actor_id, ctx.request_id, ctx.client
  if actor == nil then actor = null end
  if request_id == nil then request_id = null end
  if client == nil then client = null end
  return actor, request_id, client
end

-- Takes the events a statement brought back (its `audit` column) off the
-- row: a list, empty when there are none (or no row).
local function take_events(row)
  if not row then return {} end
  local events = row.audit
  row.audit = nil
  if events == nil or events == null then return {} end
  return events
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

-- Records admin.registered. Returns the admin, nil, the events.
function Store:create_admin(email, name, password_hash, ctx)
  local row, err = self:one("create_admin", email, name, password_hash, who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
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
-- makes the admin unconfirmed. Records admin.updated (name) and
-- admin.email_changed, each when that field changed (a password change is
-- recorded by revoke_sessions). Returns the admin (or nil), nil, the events.
function Store:update_admin(id, changes, ctx)
  local row, err = self:one("update_admin", id, opt(changes.name), opt(changes.email), opt(changes.password_hash),
                            who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
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

-- Records admin.deleted. Returns {id} (or nil), nil, the events.
function Store:delete_admin(id, ctx)
  local row, err = self:one("delete_admin", id, who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
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
-- Records admin.confirmed; the third result is the events.
function Store:confirm_admin(token_hash, ctx)
  local row, err = self:one("confirm_admin", token_hash, who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
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

-- A new session (a login), recorded as admin.login (`rehashed`: the
-- password's hash was renewed at this login); returns its id, nil, the events.
function Store:create_session(admin_id, refresh_jti, ttl, ctx, rehashed)
  local actor, request_id, client = who(ctx)
  local row, err = self:one("create_session", admin_id, refresh_jti, ttl, actor, request_id, client, rehashed == true)
  if err then return nil, err end
  local events = take_events(row)
  return tostring(row.id), nil, events
end

-- The access check: for a live session, its admin's row when `with_admin`
-- (else true), or nil. With `user_id` the same statement also reads that
-- user: the third result is its row, false when there is no such user, nil
-- when the statement did not say (the in-memory database of the route specs
-- reads no user).
function Store:session(sid, admin_id, user_id, with_admin)
  local row, err = self:one(with_admin and "session_admin" or "session_live", sid, admin_id, opt(user_id))
  if not row then return nil, err end
  local user
  if user_id ~= nil and row.u_id ~= nil then
    user = false
    if row.u_id ~= null then
      user = {}
      for i, f in ipairs(USER_FIELDS) do user[f] = row[USER_U_FIELDS[i]] end
    end
  end
  if not with_admin then return true, nil, user end
  for _, f in ipairs(USER_U_FIELDS) do row[f] = nil end
  return row, nil, user
end

-- Moves a live session from refresh token `old_jti` to `new_jti` and extends
-- it by `ttl`, never past `max_age` from its login, recorded as
-- admin.refreshed: the admin, nil, the seconds the session has left, the
-- events; or nil when the session is not live or `old_jti` is not its
-- current token (reuse).
function Store:rotate_session(sid, admin_id, old_jti, new_jti, ttl, max_age, ctx)
  local row, err = self:one("rotate_session", sid, admin_id, old_jti, new_jti, ttl, max_age, who(ctx))
  if not row then return nil, err end
  local left = row.ttl
  row.ttl = nil
  return row, nil, left, take_events(row)
end

-- Revokes one session: {id} when it was live, else nil; recorded as
-- `action` (admin.logout, admin.refresh_reuse) when given. The third result
-- is the events.
function Store:revoke_session(sid, action, ctx)
  local row, err = self:one("revoke_session", sid, opt(action), who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
end

-- Revokes every live session of an admin, but `except_sid` when given;
-- recorded as `action` (admin.logout_all, admin.password_changed,
-- admin.password_reset) when given, with the number of sessions ended.
-- Returns {ended = n}, nil, the events.
function Store:revoke_sessions(admin_id, except_sid, action, ctx)
  local actor, request_id, client = who(ctx)
  local row, err = self:one("revoke_sessions", admin_id, opt(except_sid), opt(action), actor, request_id, client)
  if not row then return nil, err end
  return row, nil, take_events(row)
end

-- ---- rate limits -------------------------------------------------------------

-- Counts one event: count in the current window, seconds until it ends.
function Store:rate_hit(kind, key, window)
  local row, err = self:one("rate_hit", kind, key, window)
  if err then return nil, err end
  return row.count, row.retry_after
end

-- Counts a login attempt for `email` (rate_hit's login_failure) and, over
-- `limit`, records it on the window's admin.login_failed event: count,
-- retry_after, the events written (the window's first refused attempt
-- only).
function Store:login_hit(kind, email, window, limit, ctx)
  local row, err = self:one("login_hit", kind, email, window, limit, who(ctx))
  if err then return nil, err end
  return row.count, row.retry_after, take_events(row)
end

function Store:rate_clear(kind, key)
  return self:run("rate_clear", kind, key)
end

-- Takes back one counted event (the attempt turned out not to count).
function Store:rate_take_back(kind, key)
  return self:run("rate_take_back", kind, key)
end

-- The mail_request statement (above): count, retry_after.
function Store:mail_request(rate_kind, email, window, token_kind, token_hash, ttl, limit, token, group)
  local row, err = self:one("mail_request", rate_kind, email, window, token_kind, token_hash, ttl, limit, token, group)
  if not row then return nil, err end
  return row.count, row.retry_after
end

-- ---- the mail outbox -------------------------------------------------------------

function Store:queue_mail(kind, to, name, token, ttl, group)
  local ok, err = self:run("queue_mail", kind, to, name, token, ttl, group)
  if not ok then return nil, err end
  return true
end

-- The oldest due mail of `group`, leased for `lease` seconds, or nil (none
-- due), or nil and an error response.
function Store:claim_mail(lease, group)
  return self:one("claim_mail", lease, group)
end

function Store:mail_sent(id)
  return self:run("mail_sent", id)
end

function Store:mail_retry(id, delay, error_text)
  return self:run("mail_retry", id, delay, error_text)
end

function Store:mail_failed(id, error_text)
  return self:run("mail_failed", id, error_text)
end

function Store:outbox_stats(group)
  return self:one("outbox_stats", group)
end

-- ---- retention -------------------------------------------------------------------

-- One batch of the sweep of `what` (sessions, tokens, rate_limits, mail, audit)
-- in transaction `tx`, under the advisory lock `lock_key`: rows deleted, or
-- false when another process holds the lock, or nil and an error response.
function Store:sweep(what, lock_key, retention, batch)
  local row, err = self:one("sweep_lock", lock_key)
  if not row then return nil, err end
  if not row.locked then return false end
  row, err = self:one("sweep_" .. what, retention, batch)
  if not row then return nil, err end
  return row.deleted
end

-- ---- users ----------------------------------------------------------------------

-- Records user.created. Returns the user, nil, the events.
function Store:create_user(email, name, active, created_by, ctx)
  local row, err = self:one("create_user", email, opt(name), active, created_by, who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
end

function Store:find_user(id)
  return self:one("user_by_id", id)
end

-- changes: {email=, name= (null clears), active=}; absent keys stay.
-- Records user.updated with the old and new value of each field that
-- changed (none changed: no event). Returns the user (or nil), nil, the events.
function Store:update_user(id, changes, ctx)
  local set_name = changes.name ~= nil
  local row, err = self:one("update_user", id, opt(changes.email), set_name, opt(changes.name), opt(changes.active),
                            who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
end

-- Records user.deleted. Returns the deleted user (or nil), nil, the events.
function Store:delete_user(id, ctx)
  local row, err = self:one("delete_user", id, who(ctx))
  if not row then return nil, err end
  return row, nil, take_events(row)
end

-- A page of users past `after`; `pattern` (validate.contains_pattern), when
-- given, picks the search statement that suits it: a pattern with a
-- trigram (3 letters or digits in a row; escapes are neither) can use the
-- trigram indexes, a shorter one cannot.
-- A scan that read its whole window without filling the page sets
-- rows.resume_after (the last id it read): the page may be short, and the
-- next one starts there (lib/page.lua).
function Store:list_users(after, limit, pattern)
  after, limit = after or "0", tostring(limit)
  if not pattern then return self:run("list_users", after, limit) end
  if find(pattern, "%w%w%w") then return self:run("list_users_search", after, limit, pattern) end
  local rows, err = self:run("list_users_scan", after, limit, pattern)
  if not rows then return nil, err end
  local matches, scanned, scanned_to = {}, nil, nil
  for _, row in ipairs(rows) do
    if row.id ~= null then
      row.scanned_to, row.scanned = nil, nil
      matches[#matches + 1] = row
    else
      scanned, scanned_to = tonumber(row.scanned), row.scanned_to
    end
  end
  if scanned == SCAN_WINDOW then matches.resume_after = format("%.0f", scanned_to) end
  return matches
end

-- ---- the audit trail -------------------------------------------------------------

-- Writes `events` (lib/audit.lua's audit.event) for changes whose own
-- statements do not: the rows written (the events to log), or nil and an
-- error response.
function Store:record(events)
  if #events == 0 then return {} end
  local rows, err = self:run("audit_record", cjson.encode(events))
  if not rows then return nil, err end
  return rows
end

-- A page of events, newest first: id below `before` (a decimal string; nil
-- for the first page), at most `limit`, with filters = {actor=, action=,
-- target_type=, target_id=, since=, until=}, each optional.
function Store:list_audit(before, limit, filters)
  local mask, args = {}, {}
  for i, f in ipairs(AUDIT_FILTERS) do
    local name = f[1]
    if name == "target" then
      mask[i] = filters.target_type ~= nil
      if mask[i] then args[#args + 1] = filters.target_type; args[#args + 1] = filters.target_id end
    else
      mask[i] = filters[name] ~= nil
      if mask[i] then args[#args + 1] = filters[name] end
    end
  end
  return self:run(audit_list_name(mask), before or "9223372036854775807", tostring(limit), unpack(args))
end

-- ---- moonkeep import (tools/import.lua) --------------------------------------------

-- What the target has for `entries` ({id=, email=[, name=]} of source rows of
-- `kind`, "admins" or "users"): rows {source_id, id_email, email_owner,
-- [name_owner,] imported_as}, or nil and an error response.
function Store:import_lookup(kind, entries)
  return self:run(kind == "admins" and "import_admin_lookup" or "import_user_lookup", cjson.encode(entries))
end

-- Moves the id sequence of `kind` past `max_id` (a decimal string).
function Store:import_sequence(kind, max_id)
  return self:run(kind == "admins" and "import_admins_sequence" or "import_users_sequence", max_id)
end

-- Inserts one admin ({id = id to keep or nil, email, name, password_hash,
-- source_id}) with its admin.imported event: its id, nil, the events; or
-- nil (a unique index refused it), or nil and an error response.
function Store:import_admin(row, run_id)
  local r, err = self:one("import_admin", opt(row.id), row.email, row.name, row.password_hash, row.source_id, run_id)
  if not r then return nil, err end
  return r.id, nil, take_events(r)
end

-- The same for a user ({id, email, active, source_id}).
function Store:import_user(row, run_id)
  local r, err = self:one("import_user", opt(row.id), row.email, row.active, row.source_id, run_id)
  if not r then return nil, err end
  return r.id, nil, take_events(r)
end

-- ---- module -------------------------------------------------------------------

local store = new(db.query)
store.SQL = SQL
store.CONFLICTS = CONFLICTS
store.map_error = map_error
return store
