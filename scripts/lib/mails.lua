-- lib/mails.lua — the emails the service sends. A link carries a one-time
-- token; only its SHA-256 is stored (one_time_tokens). A mail is a row of
-- the mail outbox written in the transaction that made its token
-- (mails.queue); lib/outbox.lua renders it with mails.message and sends it.
local crypto = require "host.crypto"
local config = require "lib.config"
local pages = require "lib.html_pages"

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

-- Adds the mail of `kind` with `token` for `admin` to the outbox, in
-- store or transaction `s` (the one that stored the token): true, or nil
-- and an error response.
function mails.queue(s, kind, admin, token, ttl)
  assert(TEMPLATES[kind], "unknown mail kind")
  return s:queue_mail(kind, admin.email, admin.name, token, ttl, config.mail_group)
end

return mails
