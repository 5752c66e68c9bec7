-- lib/mails.lua — the emails the service sends, and sending them. A link
-- carries a one-time token; only its SHA-256 is stored (one_time_tokens).
-- Sending never fails the request: host.mail queues and retries in the
-- background, and a refused send is logged (the admin can ask again).
local mail = require "host.mail"
local crypto = require "host.crypto"
local log = require "host.log"
local config = require "lib.config"
local pages = require "lib.pages"

local format = string.format

local mails = {}

local TOKEN_BYTES = 32 -- 256 bits

local TEMPLATES = {
  confirm = {
    path = "/auth/confirm",
    subject = "Confirm your email address",
    text = "Hello %s,\n\nconfirm your email address by opening this link:\n\n%s\n\n"
      .. "The link works once and expires in %s. If you did not ask for this, ignore this email.\n",
    action = "Confirm your email address",
  },
  reset = {
    path = "/auth/password/reset",
    subject = "Reset your password",
    text = "Hello %s,\n\nchoose a new password by opening this link:\n\n%s\n\n"
      .. "The link works once and expires in %s. If you did not ask for this, ignore this email:"
      .. " your password stays as it is.\n",
    action = "Choose a new password",
  },
}

local function duration(seconds)
  if seconds % 3600 == 0 then
    local h = seconds / 3600
    return format("%d hour%s", h, h == 1 and "" or "s")
  end
  local m = math.ceil(seconds / 60)
  return format("%d minute%s", m, m == 1 and "" or "s")
end

-- A fresh random token and the SHA-256 hex to store for it.
function mails.new_token()
  local token = crypto.random_token(TOKEN_BYTES)
  return token, crypto.sha256(token)
end

function mails.link(kind, token)
  return config.public_url .. TEMPLATES[kind].path .. "?token=" .. token
end

-- The message for `kind` ("confirm" or "reset") to `to`, greeting `name`.
function mails.message(kind, to, name, token, ttl)
  local t = assert(TEMPLATES[kind], "unknown mail kind")
  local link = mails.link(kind, token)
  local expires = duration(ttl)
  return {
    to = to,
    subject = t.subject,
    text = format(t.text, name, link, expires),
    html = format('<p>Hello %s,</p>\n<p><a href="%s">%s</a></p>\n<p>Or copy this link into your browser:<br>%s</p>\n'
      .. "<p>The link works once and expires in %s. If you did not ask for this, ignore this email.</p>\n",
      pages.escape(name), pages.escape(link), pages.escape(t.action), pages.escape(link), expires),
  }
end

-- Queues the message; logs (never raises, never fails the caller) when the
-- host refuses it.
function mails.send(kind, to, name, token, ttl)
  local id, err = mail.send(mails.message(kind, to, name, token, ttl))
  if not id then
    log.error("mail not queued", {kind = kind, to = to, error = tostring(err)})
    return false
  end
  log.info("mail queued", {kind = kind, mail_id = id})
  return true
end

return mails
