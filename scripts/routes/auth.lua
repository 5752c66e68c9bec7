-- routes/auth.lua — /auth/*: registration and confirmation, login and
-- sessions, password reset, and the admin's own account (docs/api.md, Routes).
local password = require "host.password"
local crypto = require "host.crypto"
local log = require "host.log"
local config = require "lib.config"
local http = require "lib.http"
local store = require "lib.store"
local validate = require "lib.validate"
local views = require "lib.views"
local auth = require "lib.auth"
local audit = require "lib.audit"
local limits = require "lib.limits"
local mails = require "lib.mails"
local page = require "lib.pagination"
local pages = require "lib.html_pages"

local type, error, tostring, ipairs = type, error, tostring, ipairs

local MSG = {
  confirmed_title = "Email address confirmed",
  confirmed = "Your email address is confirmed. You can log in now.",
  link_title = "This link does not work",
  reset_link = "The link is invalid, has expired or was already used. Ask for a new one.",
  password_wrong = "is not correct",
  unavailable_page = "The service is temporarily unavailable. Try again in a moment.",
  not_found = "no such admin",
  busy = "the service is busy; try again in a moment",
}

-- ---- helpers --------------------------------------------------------------

-- host.password answers nil, "busy" when its queue is full: a 503 the
-- client may retry; any other failure is unexpected (raised: 500).
local function password_failure(err)
  if err == "busy" then
    log.warn("password hashing queue full")
    return http.error("unavailable", MSG.busy, nil, {["Retry-After"] = "1"})
  end
  error("password hashing failed: " .. tostring(err))
end

-- The argon2id hash of pw, or nil and a 503.
local function hash_password(pw)
  local hash, err = password.hash(pw)
  if not hash then return nil, password_failure(err) end
  return hash
end

-- true/false, or nil and a 503 (hash nil: the dummy work for unknown emails).
local function verify_password(hash, pw)
  local ok, err
  if hash then
    ok, err = password.verify(hash, pw)
  else
    ok, err = password.verify_dummy(pw)
  end
  if ok == nil then return nil, password_failure(err) end
  return ok
end

-- Makes a one-time link of `kind` for the admin and queues its mail, in
-- transaction `tx`, unless the address had its share of mails: the mail
-- limit counts every mail, but a registration or an email change is never
-- refused for it (the admin can ask again later). true, or nil and an
-- error response.
local function issue_link(tx, kind, admin, ttl)
  local token, token_hash = mails.new_token()
  local ok, err = tx:create_token(kind, token_hash, validate.id(admin.id), admin.email, ttl)
  if not ok then return nil, err end
  local allowed = limits.mail(kind, admin.email, tx)
  if not allowed then
    log.warn("mail not sent: rate limited", {kind = kind, admin_id = admin.id})
    return true
  end
  return mails.queue(tx, kind, admin, token, ttl)
end

local validation_failed = http.validation_failed

-- An attempt counted by limits.login_attempt that was no failure after all
-- (the password was right, or never checked): takes it back and answers
-- `response`.
local function settle_attempt(email, response)
  local ok, err = limits.take_back_login(email)
  if not ok then return err end
  return response
end

-- ---- registration and confirmation ------------------------------------------

-- POST /auth/register {email, name, password} -> 201 {admin}
local function register(req)
  local body, err = http.read_json(req)
  if not body then return err end
  local input, fields = validate.register(body)
  if not input then return validation_failed(fields) end
  local ok
  ok, err = limits.client_hash(req)
  if not ok then return err end
  -- a taken email or name costs no hashing (409 says no more than it did)
  ok, err = store:admin_free(input.email, input.name)
  if not ok then return err end
  local hash
  hash, err = hash_password(input.password)
  if not hash then return err end
  local events
  local admin
  admin, err = store:transaction(function(tx)
    local a, e
    a, e, events = tx:create_admin(input.email, input.name, hash, audit.context(req))
    if not a then return nil, e end
    ok, e = issue_link(tx, "confirm", a, config.confirm_ttl)
    if not ok then return nil, e end
    return a
  end)
  if not admin then return err end
  audit.log(events)
  log.info("admin registered", {admin_id = admin.id})
  return http.created({admin = views.admin(admin)})
end

-- The outcome of a confirmation as JSON, or as a page for a browser.
local function confirm_reply(req, res, admin)
  if not http.wants_html(req) then
    return res or http.ok({admin = views.admin(admin)})
  end
  local nonce = crypto.random_token(16)
  if admin then
    return http.html(200, pages.message(MSG.confirmed_title, MSG.confirmed, true, nonce), pages.headers(nonce))
  end
  local text = res.status == 503 and MSG.unavailable_page or res.body.error.message
  return http.html(res.status, pages.message(MSG.link_title, text, false, nonce), pages.headers(nonce))
end

-- GET /auth/confirm?token= -> 200 {admin} (or a page)
local function confirm(req)
  -- A HEAD (link checkers, previews) must not use up the link.
  if req.method == "HEAD" then return http.ok() end
  local token = validate.token(req.query.token)
  if not token then return confirm_reply(req, http.error("invalid_token")) end
  local admin, err, events = store:confirm_admin(crypto.sha256(token), audit.context(req))
  if err then return confirm_reply(req, err) end
  if not admin then return confirm_reply(req, http.error("invalid_token")) end
  audit.log(events)
  log.info("admin confirmed", {admin_id = admin.id})
  return confirm_reply(req, nil, admin)
end

-- Answers a request for a link of `kind` mailed to an address: 202 whether
-- or not the address is an admin's (for a confirmation: an unconfirmed one),
-- after the same work either way (a token made, one statement that counts
-- the request and, only for an admin, stores the token and queues its mail:
-- lib/store.lua, mail_request), so neither the answer nor its time tells which addresses
-- exist. 429 past the mail limit.
local function mail_link_to_address(req, kind, ttl)
  local body, err = http.read_json(req)
  if not body then return err end
  local input, fields = validate.email_request(body)
  if not input then return validation_failed(fields) end
  local token, token_hash = mails.new_token()
  local count, retry_after = store:mail_request(limits.mail_kind(kind), input.email, config.mail_rate_window,
                                               kind, token_hash, ttl, config.mail_rate_limit, token,
                                               config.mail_group)
  if not count then return retry_after end -- the store's error response
  local ok, limited = limits.mail_counted(count, retry_after)
  if not ok then return limited end
  return http.accepted()
end

-- POST /auth/confirm/resend {email} -> 202, whether or not the address exists
local function resend_confirmation(req)
  return mail_link_to_address(req, "confirm", config.confirm_ttl)
end

-- ---- login and sessions --------------------------------------------------------

-- Records a failed proof of the password of `email` (a login, a
-- current_password) as admin.login_failed; `admin_id` nil for an unknown
-- email. Answers `response`, or the store's error when it cannot record.
local function login_failed(ctx, email, admin_id, reason, response)
  local events, err = store:record({audit.event(ctx, "admin.login_failed", "admin", admin_id,
                                               {email = email, reason = reason})})
  if not events then return err end
  audit.log(events)
  return response
end

-- POST /auth/login {email, password} -> 200 Tokens
local function login(req)
  local body, err = http.read_json(req)
  if not body then return err end
  local input, fields = validate.login(body)
  if not input then return validation_failed(fields) end
  local ok
  ok, err = limits.client_hash(req)
  if not ok then return err end
  local ctx = audit.context(req)
  -- counted as a failure before the work; settled below
  ok, err = limits.login_attempt(input.email, ctx)
  if not ok then return err end

  local found
  found, err = store:admin_login(input.email)
  if err then return err end
  -- An unknown email costs the same argon2id work, so timing tells nothing.
  local verified
  verified, err = verify_password(found and found.password_hash, input.password)
  if verified == nil then return settle_attempt(input.email, err) end
  if not verified then
    return login_failed(ctx, input.email, found and validate.id(found.admin.id),
                        found and "wrong_password" or "unknown_email", http.unauthorized("invalid_credentials"))
  end
  local admin = found.admin
  if not admin.confirmed then return settle_attempt(input.email, http.error("account_not_confirmed")) end

  ok, err = limits.login_succeeded(input.email)
  if not ok then return err end
  local renewed = false
  if password.needs_rehash(found.password_hash) then
    local rehashed = password.hash(input.password)
    if rehashed then
      local _, rerr = store:rehash_password(validate.id(admin.id), found.password_hash, rehashed)
      if rerr then log.warn("password rehash not saved", {admin_id = admin.id}) end
      renewed = rerr == nil
    end
  end
  local tokens
  tokens, err = auth.start_session(admin, audit.as(ctx, validate.id(admin.id)), renewed)
  if not tokens then return err end
  log.info("admin logged in", {admin_id = admin.id})
  return http.ok(tokens)
end

-- POST /auth/refresh {refresh_token} or Authorization: Bearer <refresh token>
-- (GET, with the header, for old clients) -> 200 Tokens
local function refresh(req)
  local token
  if req.method == "POST" then
    local body, err = http.read_json(req)
    if not body then return err end
    local given = body.refresh_token
    if given ~= nil and given ~= http.null then
      if type(given) ~= "string" then
        return validation_failed({refresh_token = validate.MESSAGES.string})
      end
      token = given
    end
  end
  token = token or http.bearer_token(req)
  local tokens, err = auth.refresh(token, audit.context(req))
  if not tokens then return err end
  return http.ok(tokens)
end

-- POST /auth/logout[?all=true] -> 204
local function logout(req)
  local all, msg = validate.flag(req.query.all)
  if all == nil then return http.error("bad_request", "all " .. msg) end
  local ok, err = auth.logout(req.auth, all, audit.context(req))
  if not ok then return err end
  log.info("admin logged out", {admin_id = req.auth.admin_id, all = all})
  return http.no_content()
end

-- ---- password reset ---------------------------------------------------------------

-- POST /auth/password/forgot {email} -> 202, whether or not the address exists
local function forgot_password(req)
  return mail_link_to_address(req, "reset", config.reset_ttl)
end

-- GET /auth/password/reset?token= -> the form (opening it does not use the token)
local function reset_form(req)
  local nonce = crypto.random_token(16)
  local token = validate.token(req.query.token)
  local owner, err
  if token then
    owner, err = store:peek_reset_token(crypto.sha256(token))
  end
  if not owner then
    local status = err and err.status or 400
    local text = status == 503 and MSG.unavailable_page or MSG.reset_link
    return http.html(status, pages.message(MSG.link_title, text, false, nonce), pages.headers(nonce))
  end
  return http.html(200, pages.reset_form(token, nonce), pages.headers(nonce))
end

-- POST /auth/password/reset {token, password} -> 204; ends every session
local function reset_password(req)
  local body, err = http.read_json(req)
  if not body then return err end
  local input, fields = validate.password_reset(body)
  if not input then return validation_failed(fields) end
  local ok
  ok, err = limits.client_hash(req)
  if not ok then return err end
  local token_hash = crypto.sha256(input.token)
  local owner
  owner, err = store:peek_reset_token(token_hash)
  if err then return err end
  if not owner then return http.error("invalid_token") end
  fields = validate.password_differs(nil, input.password, owner.email, owner.name)
  if fields then return validation_failed(fields) end

  local hash
  hash, err = hash_password(input.password)
  if not hash then return err end
  local used, events
  used, err = store:transaction(function(tx)
    local t, e = tx:use_reset_token(token_hash)
    if e then return nil, e end
    if not t then return false end -- used meanwhile
    local admin_id = validate.id(t.admin_id)
    local done
    done, e = tx:reset_password(admin_id, hash, t.email)
    if not done then return nil, e or http.error("invalid_token") end
    -- the link proves the address, not who holds it: no actor
    done, e, events = tx:revoke_sessions(admin_id, nil, "admin.password_reset", audit.context(req, false))
    if not done then return nil, e end
    done, e = tx:drop_unused_tokens(admin_id, "reset")
    if not done then return nil, e end
    done, e = limits.login_succeeded(t.email, tx)
    if not done then return nil, e end
    return t
  end)
  if err then return err end
  if not used then return http.error("invalid_token") end
  audit.log(events)
  log.info("password reset", {admin_id = used.admin_id})
  return http.no_content()
end

-- ---- the admin's own account --------------------------------------------------------

-- GET /auth/me -> 200 {admin}
local function me(req)
  return http.ok({admin = views.admin(req.auth.admin)})
end

-- Checks current_password (a change of email or password, the deletion of
-- the account): true, or nil and `wrong` when it is not the password, or
-- another error response. Attempts count as failed logins, counted first (a
-- stolen access token must not become a password oracle), and a wrong one
-- is recorded as one (`ctx`: the request's audit context).
local function check_current_password(current, given, wrong, ctx)
  local ok, err = limits.login_attempt(current.email, ctx)
  if not ok then return nil, err end
  local hash
  hash, err = store:password_hash(validate.id(current.id))
  if err then return nil, err end
  if not hash then return nil, settle_attempt(current.email, http.error("not_found", MSG.not_found)) end
  local verified
  verified, err = verify_password(hash, given)
  if verified == nil then return nil, settle_attempt(current.email, err) end
  if not verified then
    return nil, login_failed(ctx, current.email, validate.id(current.id), "wrong_current_password", wrong)
  end
  err = settle_attempt(current.email, nil)
  if err then return nil, err end
  return true
end

-- PUT /auth/me {name?, email?, password?, current_password?} -> 200 {admin}
local function update_me(req)
  local body, err = http.read_json(req)
  if not body then return err end
  local current = req.auth.admin
  local input, fields = validate.admin_update(body, current)
  if not input then return validation_failed(fields) end
  local ctx = audit.context(req)
  if input.email or input.password then
    local ok
    ok, err = check_current_password(current, input.current_password,
                                     validation_failed({current_password = MSG.password_wrong}), ctx)
    if not ok then return err end
  end
  local changes = {name = input.name, email = input.email}
  if input.password then
    changes.password_hash, err = hash_password(input.password)
    if not changes.password_hash then return err end
  end
  if not (changes.name or changes.email or changes.password_hash) then
    return http.ok({admin = views.admin(current)})
  end

  local admin
  local events = {}
  admin, err = store:transaction(function(tx)
    local id = req.auth.admin_id
    local a, e, recorded = tx:update_admin(id, changes, ctx)
    if not a then return nil, e or http.error("not_found", MSG.not_found) end
    events = recorded
    local ok
    if changes.password_hash then
      ok, e, recorded = tx:revoke_sessions(id, req.auth.sid, "admin.password_changed", ctx)
      if not ok then return nil, e end
      for _, event in ipairs(recorded) do events[#events + 1] = event end
      -- a reset link mailed before the change must not undo it
      ok, e = tx:drop_unused_tokens(id, "reset")
      if not ok then return nil, e end
    end
    if changes.email then
      ok, e = tx:drop_unused_tokens(id, nil)
      if not ok then return nil, e end
      ok, e = issue_link(tx, "confirm", a, config.confirm_ttl)
      if not ok then return nil, e end
    end
    return a
  end)
  if not admin then return err end
  audit.log(events)
  log.info("admin updated", {admin_id = admin.id, email_changed = changes.email ~= nil,
                             password_changed = changes.password_hash ~= nil})
  return http.ok({admin = views.admin(admin)})
end

-- DELETE /auth/me {current_password} -> 204; sessions and tokens go with the
-- row (ON DELETE CASCADE), users they created stay with created_by = null.
-- The password again: an access token alone (stolen, left in a browser)
-- must not be enough to delete the account for good.
local function delete_me(req)
  local body, err = http.read_json(req)
  if not body then return err end
  local input, fields = validate.current_password(body)
  if not input then return validation_failed(fields) end
  local ok
  local ctx = audit.context(req)
  ok, err = check_current_password(req.auth.admin, input.current_password, http.unauthorized("invalid_credentials"),
                                   ctx)
  if not ok then return err end
  local deleted, events
  deleted, err, events = store:delete_admin(req.auth.admin_id, ctx)
  if err then return err end
  audit.log(events)
  if deleted then log.info("admin deleted", {admin_id = req.auth.admin_id}) end
  return http.no_content()
end

-- GET /auth/admins?limit=&cursor=&q= -> 200 {admins, next_cursor}
local list_admins = page.handler("admins", function(...) return store:list_admins(...) end, views.admin)

return {
  {"POST", "/auth/register", register},
  {"GET", "/auth/confirm", confirm},
  {"POST", "/auth/confirm/resend", resend_confirmation},
  {"POST", "/auth/login", login},
  {"POST", "/auth/refresh", refresh},
  -- rotates the session: no HEAD (its answer would be lost, and the
  -- client's next refresh taken as a reuse)
  {"GET", "/auth/refresh", refresh, unsafe = true},
  {"POST", "/auth/logout", logout, auth = true},
  {"POST", "/auth/password/forgot", forgot_password},
  {"GET", "/auth/password/reset", reset_form},
  {"POST", "/auth/password/reset", reset_password},
  -- reads_admin: the session check reads the admin's row (app.lua)
  {"GET", "/auth/me", me, auth = true, reads_admin = true},
  {"PUT", "/auth/me", update_me, auth = true, reads_admin = true},
  {"DELETE", "/auth/me", delete_me, auth = true, reads_admin = true},
  {"GET", "/auth/admins", list_admins, auth = true},
}
