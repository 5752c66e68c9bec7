-- lib/limits.lua — the rate limits of API.md, counted in the database
-- (rate_limits) so that they hold across workers and replicas:
--
--   failed logins   LOGIN_FAILURE_LIMIT per email per LOGIN_FAILURE_WINDOW_S;
--                   a successful login or a password reset clears the count;
--                   the refused attempts of a window are one audit event
--                   that counts them (store:login_hit)
--   mails           MAIL_RATE_LIMIT per address and kind (confirm, reset) per
--                   MAIL_RATE_WINDOW_S, counted whether or not the address
--                   belongs to anyone
--   hashing budget  CLIENT_HASH_BUDGET_PER_MIN password-hashing requests
--                   without a token (register, login, password reset) per
--                   client address per minute; 0: no budget
--
-- Every limit is counted before the work it guards and decided on the count
-- that counting returned (one atomic upsert), so a burst of concurrent
-- requests gets no more than the limit; an attempt that turns out not to
-- count (a right password) is taken back. Emails arrive in their canonical
-- form (validate.email), so every spelling of one address is one key.
--
-- Each function returns true, or nil and an error response (429 with
-- Retry-After, or what the store answered).
local audit = require "lib.audit"
local config = require "lib.config"
local http = require "lib.http"
local store = require "lib.store"

local limits = {}

local LOGIN_FAILURE = "login_failure"
local CLIENT_HASH = "client_hash"
local MAIL_KIND = {confirm = "mail_confirm", reset = "mail_reset"}
local MINUTE = 60

local MSG_LOGIN = "too many failed logins for this email address; try again later"
local MSG_MAIL = "too many emails sent to this address; try again later"
local MSG_CLIENT = "too many password attempts from this address; try again later"

-- The decision on a count: true, or nil and the 429.
local function within(count, retry_after, limit, msg)
  if count > limit then return nil, http.rate_limited(retry_after, msg) end
  return true
end

local function hit(kind, key, window, limit, msg, s)
  local count, retry_after = (s or store):rate_hit(kind, key, window)
  if not count then return nil, retry_after end
  return within(count, retry_after, limit, msg)
end

-- Counts an attempt to prove the password of `email` (a login, a
-- current_password) as a failure up front: true when it may go on.
-- limits.login_succeeded or limits.take_back_login settles it afterwards.
-- A refused attempt is counted on its window's audit event (`ctx`: the
-- request's audit context).
function limits.login_attempt(email, ctx)
  local limit = config.login_failure_limit
  local count, retry_after, events = store:login_hit(LOGIN_FAILURE, email, config.login_failure_window, limit, ctx)
  if not count then return nil, retry_after end
  audit.log(events)
  return within(count, retry_after, limit, MSG_LOGIN)
end

-- The password was right (or was never checked): the attempt is not a failure.
function limits.take_back_login(email)
  local ok, err = store:rate_take_back(LOGIN_FAILURE, email)
  if not ok then return nil, err end
  return true
end

-- A successful login or a password reset clears the count. `s` is the store
-- or a transaction's store.
function limits.login_succeeded(email, s)
  local ok, err = (s or store):rate_clear(LOGIN_FAILURE, email)
  if not ok then return nil, err end
  return true
end

-- Counts one mail of `kind` ("confirm" or "reset") to `email`, in store or
-- transaction `s` (the one that queues the mail); true when it may be sent.
function limits.mail(kind, email, s)
  return hit(assert(MAIL_KIND[kind], "unknown mail kind"), email, config.mail_rate_window,
             config.mail_rate_limit, MSG_MAIL, s)
end

-- The rate_limits kind of `kind`'s mails, and the decision on a count that
-- store:mail_request made in its own statement (true, or nil and the 429).
function limits.mail_kind(kind)
  return assert(MAIL_KIND[kind], "unknown mail kind")
end

function limits.mail_counted(count, retry_after)
  return within(count, retry_after, config.mail_rate_limit, MSG_MAIL)
end

-- Counts one password-hashing request made without a token from the
-- request's client address (req.client_addr: the socket peer, or what a
-- trusted proxy said; the host works it out, see TRUSTED_PROXIES).
function limits.client_hash(req)
  local budget = config.client_hash_budget
  if budget == 0 then return true end
  local client = req.client_addr or req.remote_addr or "unknown"
  return hit(CLIENT_HASH, client, MINUTE, budget, MSG_CLIENT)
end

return limits
