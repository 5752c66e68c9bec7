-- lib/limits.lua — the rate limits of API.md, counted in the database
-- (rate_limits) so that they hold across workers and replicas:
--
--   failed logins   LOGIN_FAILURE_LIMIT per email per LOGIN_FAILURE_WINDOW_S;
--                   a successful login or a password reset clears the count
--   mails           MAIL_RATE_LIMIT per address and kind (confirm, reset) per
--                   MAIL_RATE_WINDOW_S, counted whether or not the address
--                   belongs to anyone
--
-- Each function returns true, or nil and an error response (429 with
-- Retry-After, or what the store answered).
local config = require "lib.config"
local http = require "lib.http"
local store = require "lib.store"

local limits = {}

local LOGIN_FAILURE = "login_failure"
local MAIL_KIND = {confirm = "mail_confirm", reset = "mail_reset"}

local MSG_LOGIN = "too many failed logins for this email address; try again later"
local MSG_MAIL = "too many emails sent to this address; try again later"

-- May this email try to log in (or prove its password) now?
function limits.check_login(email)
  local count, retry_after = store:rate_count(LOGIN_FAILURE, email, config.login_failure_window)
  if not count then return nil, retry_after end
  if count >= config.login_failure_limit then
    return nil, http.rate_limited(retry_after, MSG_LOGIN)
  end
  return true
end

function limits.login_failed(email)
  local count, err = store:rate_hit(LOGIN_FAILURE, email, config.login_failure_window)
  if not count then return nil, err end
  return true
end

-- A successful login or a password reset. `s` is the store or a
-- transaction's store.
function limits.clear_login_failures(email, s)
  local ok, err = (s or store):rate_clear(LOGIN_FAILURE, email)
  if not ok then return nil, err end
  return true
end

-- Counts one mail of `kind` ("confirm" or "reset") to `email`; true when it
-- may be sent.
function limits.mail(kind, email)
  local count, retry_after = store:rate_hit(assert(MAIL_KIND[kind], "unknown mail kind"), email,
                                            config.mail_rate_window)
  if not count then return nil, retry_after end
  if count > config.mail_rate_limit then
    return nil, http.rate_limited(retry_after, MSG_MAIL)
  end
  return true
end

return limits
