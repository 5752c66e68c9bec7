-- spec/support/api.lua — shortcuts through the real API for end-to-end specs
-- that need a logged-in admin but are about something else.
local mailbox = require "support.mailbox"

local api = {}

function api.unique(prefix)
  return ("%s%d%d"):format(prefix, os.time() % 100000, math.random(1, 1e6))
end

-- Registers, confirms (the link from the outbox mail, or from `sink_dir`
-- when the server sends SMTP) and logs in a fresh admin. Returns
-- {email, name, password, access, refresh, admin}.
function api.admin_session(srv, sink_dir)
  local name = api.unique("op")
  local email = name .. "@example.com"
  local password = "a long enough passphrase"
  local res = srv:request("POST", "/auth/register", {body = {email = email, name = name, password = password}})
  assert(res and res.status == 201, "register: " .. tostring(res and res.body))
  local raw = assert(mailbox.message_to(sink_dir or srv.outbox, email), "no confirmation mail")
  local link = assert(mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/confirm?token="), "no link in the mail")
  res = srv:request("GET", link:sub(#srv.env.PUBLIC_URL + 1))
  assert(res.status == 200, "confirm: " .. res.body)
  res = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
  assert(res.status == 200, "login: " .. res.body)
  return {email = email, name = name, password = password, admin = res.json.admin,
          access = res.json.access_token, refresh = res.json.refresh_token}
end

function api.bearer(token) return {Authorization = "Bearer " .. token} end

return api
