-- lib/auth.lua — bearer tokens and sessions (docs/api.md, Tokens).
--
-- Every login is a session (a row of `sessions`); both of its tokens carry
-- the session id as `sid`:
--
--   access   JWT {sub, sid, jti, typ = "access"},  ACCESS_TOKEN_TTL_S  (15 min)
--   refresh  JWT {sub, sid, jti, typ = "refresh"}, REFRESH_TOKEN_TTL_S (30 days)
--
-- A session lives REFRESH_TOKEN_TTL_S from its last refresh, and never more
-- than SESSION_MAX_AGE_S from its login (ASVS 3.3): refreshing does not
-- keep a stolen refresh token alive forever. No refresh token outlives its
-- session.
--
-- The session row holds the jti of its one current refresh token. A refresh
-- moves the session to a new jti; presenting an older one (a token that was
-- already rotated, so stolen or replayed) revokes the whole session.
-- Every authenticated request checks that its session is live in the
-- database, so logout, a password change or reset, and the deletion of the
-- admin take effect at once on every worker and replica.
local jwt = require "host.jwt"
local crypto = require "host.crypto"
local log = require "host.log"
local audit = require "lib.audit"
local config = require "lib.config"
local http = require "lib.http"
local store = require "lib.store"
local validate = require "lib.validate"
local views = require "lib.views"

local type, select, min = type, select, math.min

local auth = {}

local JTI_BYTES = 16

local MSG = {
  missing = "a bearer access token is required",
  invalid = "the access token is not valid",
  expired = "the access token has expired",
  ended = "the session has ended; log in again",
  refresh_missing = "a refresh token is required",
  refresh_invalid = "the refresh token is not valid",
  refresh_expired = "the refresh token has expired; log in again",
  refresh_spent = "the refresh token is no longer valid; log in again",
}
auth.MESSAGES = MSG

-- The live session's admin (and the user `user_id`, see below), or nil, or
-- nil and an error response.
--
-- Seam: this is one query per authenticated request. A per-worker cache of
-- live sessions, invalidated by LISTEN/NOTIFY on revocation, would go here
-- (and only here) when that query becomes the bottleneck.
local function load_session(sid, admin_id, user_id, with_admin)
  return store:session(sid, admin_id, user_id, with_admin)
end

-- Checks `Authorization: Bearer <access token>`. Returns
-- {admin_id = id string, sid = session id string [, admin = row]
--  [, user_id = id string, user = row or false]}, or nil and a 401
-- (unauthorized or token_expired, with WWW-Authenticate: Bearer). The
-- admin's row is read only `with_admin` (a route's `reads_admin`: the
-- routes of /auth/me); the others need only the id, and the session check
-- then skips the admins table (docs/performance.md).
--
-- Reading one user is most of what an authenticated client does, and the
-- session check is a round trip of its own: given `user_id` (the id of the
-- user the route reads: app.lua takes it from a route's `reads_user`), the
-- session check's statement reads that user too, and the handler finds it
-- in the context (user_id, user = row or false). One round trip instead of
-- two (docs/performance.md). A handler must fall back to its own query when
-- req.auth.user_id is not its id: the statement may not have said.
function auth.authenticate(req, user_id, with_admin)
  local token = http.bearer_token(req)
  if not token then return nil, http.unauthorized("unauthorized", MSG.missing) end
  local claims, why = jwt.verify(token, "access")
  if not claims then
    if why == "expired" then return nil, http.unauthorized("token_expired", MSG.expired) end
    return nil, http.unauthorized("unauthorized", MSG.invalid)
  end
  local sid, admin_id = validate.id(claims.sid), validate.id(claims.sub)
  if not sid or not admin_id then return nil, http.unauthorized("unauthorized", MSG.invalid) end
  local admin, err, user = load_session(sid, admin_id, user_id, with_admin)
  if err then return nil, err end
  if not admin then return nil, http.unauthorized("unauthorized", MSG.ended) end
  local ctx = {admin = with_admin and admin or nil, admin_id = admin_id, sid = sid}
  if user ~= nil then ctx.user_id, ctx.user = user_id, user end
  return ctx
end

-- The Tokens body for a session whose current refresh jti is `refresh_jti`
-- and which has `refresh_ttl` seconds left.
local function tokens(admin, sid, refresh_jti, refresh_ttl)
  local sub = validate.id(admin.id)
  return {
    access_token = jwt.sign({sub = sub, sid = sid, jti = crypto.random_token(JTI_BYTES), typ = "access"},
                            config.access_ttl),
    refresh_token = jwt.sign({sub = sub, sid = sid, jti = refresh_jti, typ = "refresh"}, refresh_ttl),
    token_type = "Bearer",
    expires_in = config.access_ttl,
    admin = views.admin(admin),
  }
end

-- A new session for `admin` (after a verified login), recorded as
-- admin.login with the request's audit context `ctx` (`rehashed`: the
-- password's hash was renewed at this login): the Tokens body, or nil and
-- an error response.
function auth.start_session(admin, ctx, rehashed)
  local jti = crypto.random_token(JTI_BYTES)
  local ttl = min(config.refresh_ttl, config.session_max_age)
  local sid, err, events = store:create_session(validate.id(admin.id), jti, ttl, ctx, rehashed)
  if not sid then return nil, err end
  audit.log(events)
  return tokens(admin, sid, jti, ttl)
end

-- Rotates the session of a refresh token: the new Tokens body, or nil and a
-- 401 (or what the store answered). Recorded as admin.refreshed, by the
-- token's admin, or admin.refresh_reuse, by nobody known, with the
-- request's audit context `ctx`.
function auth.refresh(token, ctx)
  if type(token) ~= "string" or token == "" then
    return nil, http.unauthorized("unauthorized", MSG.refresh_missing)
  end
  local claims, why = jwt.verify(token, "refresh")
  if not claims then
    if why == "expired" then return nil, http.unauthorized("token_expired", MSG.refresh_expired) end
    return nil, http.unauthorized("unauthorized", MSG.refresh_invalid)
  end
  local sid, admin_id, jti = validate.id(claims.sid), validate.id(claims.sub), claims.jti
  if not sid or not admin_id or type(jti) ~= "string" then
    return nil, http.unauthorized("unauthorized", MSG.refresh_invalid)
  end
  local new_jti = crypto.random_token(JTI_BYTES)
  local admin, err, left, events = store:rotate_session(sid, admin_id, jti, new_jti, config.refresh_ttl,
                                                       config.session_max_age, audit.as(ctx, admin_id))
  if err then return nil, err end
  if not admin then
    -- Not the session's current token: replayed, or the session has ended.
    -- Either way the family goes; if it was live, that was a reuse (by
    -- whoever holds the token: not an actor the trail can name).
    local revoked, rerr
    revoked, rerr, events = store:revoke_session(sid, "admin.refresh_reuse", audit.as(ctx, nil))
    if rerr then return nil, rerr end
    if revoked then
      audit.log(events)
      log.warn("refresh token reused; session revoked", {session_id = sid, admin_id = admin_id})
    end
    return nil, http.unauthorized("unauthorized", MSG.refresh_spent)
  end
  audit.log(events)
  return tokens(admin, sid, new_jti, left)
end

-- Ends the session `sid`, or every session of the admin when `all`
-- (`session`: req.auth), recorded as admin.logout or admin.logout_all with
-- the request's audit context `ctx`.
function auth.logout(session, all, ctx)
  local err, events
  if all then
    err, events = select(2, store:revoke_sessions(session.admin_id, nil, "admin.logout_all", ctx))
  else
    err, events = select(2, store:revoke_session(session.sid, "admin.logout", ctx))
  end
  if err then return nil, err end
  audit.log(events)
  return true
end

return auth
