-- The whole journey of docs/api.md against the real binary, real PostgreSQL and a
-- real SMTP server: register, mail, confirm, log in, manage users, refresh,
-- log out, reset the password, and every error row of the status table.
local server = require "support.server"
local mailbox = require "support.mailbox"
local util = require "support.util"
local socket = require "socket"

local function unique(prefix)
  return ("%s-%d-%d"):format(prefix, os.time(), math.random(1, 1e9))
end

local function bearer(token) return {Authorization = "Bearer " .. token} end

describe("the admin journey", function()
  local srv, sink, email, name
  local password = "correct horse battery staple"

  setup(function()
    local port = util.free_port()
    sink = mailbox.start_sink(port, util.tmpdir("mail"))
    srv = server.start({workers = 2, env = {
      MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off",
      LOGIN_FAILURE_LIMIT = "5",
    }})
    email = unique("ada") .. "@example.com"
    name = unique("ada"):gsub("%-", "_"):sub(1, 32)
  end)

  teardown(function()
    if srv then srv:stop() end
    if sink then sink.stop() end
  end)

  local state = {}

  it("registers an admin with 201 and no secrets in the body", function()
    local res = srv:request("POST", "/auth/register", {body = {email = "  " .. email:upper() .. " ", name = name, password = password}})
    assert.equal(201, res.status, res.body)
    assert.equal(email, res.json.admin.email)
    assert.equal(name, res.json.admin.name)
    assert.is_false(res.json.admin.confirmed)
    assert.is_number(res.json.admin.id)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", res.json.admin.created_at)
    assert.not_matches("argon2", res.body)
    assert.is_nil(res.json.admin.password_hash)
    state.admin_id = res.json.admin.id
  end)

  it("refuses a second registration of the same email or name with 409", function()
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = name .. "x", password = password}})
    assert.equal(409, res.status)
    assert.equal("conflict", res.json.error.code)
    assert.is_string(res.json.error.fields.email)
    res = srv:request("POST", "/auth/register", {body = {email = "x" .. email, name = name:upper(), password = password}})
    assert.equal(409, res.status)
    assert.is_string(res.json.error.fields.name)
  end)

  it("answers 403 account_not_confirmed to a login before confirmation", function()
    local res = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
    assert.equal(403, res.status)
    assert.equal("account_not_confirmed", res.json.error.code)
  end)

  it("mails a confirmation link through SMTP", function()
    local raw = assert(mailbox.message_to(sink.dir, email), "no confirmation mail arrived")
    local link, token = mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    assert.is_string(link)
    assert.is_true(#token >= 22)
    state.confirm_path = link:sub(#srv.env.PUBLIC_URL + 1)
  end)

  it("confirms the account from the link, once", function()
    local res = srv:request("GET", state.confirm_path)
    assert.equal(200, res.status, res.body)
    assert.is_true(res.json.admin.confirmed)
    res = srv:request("GET", state.confirm_path)
    assert.equal(400, res.status)
    assert.equal("invalid_token", res.json.error.code)
  end)

  it("refuses an altered confirmation token with 400 invalid_token", function()
    local res = srv:request("GET", "/auth/confirm?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert.equal(400, res.status)
    assert.equal("invalid_token", res.json.error.code)
  end)

  it("answers a wrong password and an unknown email with the same 401", function()
    local wrong = srv:request("POST", "/auth/login", {body = {email = email, password = "not the password"}})
    local unknown = srv:request("POST", "/auth/login", {body = {email = unique("nobody") .. "@example.com", password = password}})
    assert.equal(401, wrong.status)
    assert.equal("invalid_credentials", wrong.json.error.code)
    assert.same(wrong.json, unknown.json)
  end)

  it("logs in with 200 and a pair of tokens", function()
    local res = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
    assert.equal(200, res.status, res.body)
    assert.equal("Bearer", res.json.token_type)
    assert.is_number(res.json.expires_in)
    assert.is_string(res.json.access_token)
    assert.is_string(res.json.refresh_token)
    assert.equal(email, res.json.admin.email)
    state.access, state.refresh = res.json.access_token, res.json.refresh_token
  end)

  it("answers 401 with WWW-Authenticate without a token, or with a bad one", function()
    local res = srv:request("GET", "/users")
    assert.equal(401, res.status)
    assert.equal("Bearer", res.headers["www-authenticate"])
    assert.equal("unauthorized", res.json.error.code)
    res = srv:request("GET", "/users", {headers = bearer("not.a.token")})
    assert.equal(401, res.status)
    res = srv:request("GET", "/users", {headers = bearer(state.refresh)})
    assert.equal(401, res.status, "a refresh token is not an access token")
  end)

  it("creates, reads, updates, lists and deletes users", function()
    local h = bearer(state.access)
    local user_email = unique("grace") .. "@example.com"
    local res = srv:request("POST", "/user", {headers = h, body = {email = user_email, name = "Grace Hopper"}})
    assert.equal(201, res.status, res.body)
    local user = res.json.user
    assert.equal(user_email, user.email)
    assert.is_true(user.active)
    assert.equal(state.admin_id, user.created_by)

    res = srv:request("GET", "/user?id=" .. user.id, {headers = h})
    assert.equal(200, res.status)
    assert.same(user, res.json.user)

    res = srv:request("PUT", "/user?id=" .. user.id, {headers = h, body = {name = "Rear Admiral Hopper"}})
    assert.equal(200, res.status)
    assert.equal("Rear Admiral Hopper", res.json.user.name)
    assert.equal(user_email, res.json.user.email)

    res = srv:request("PATCH", "/users/" .. user.id, {headers = h, body = {active = false}})
    assert.equal(200, res.status)
    assert.is_false(res.json.user.active)

    res = srv:request("GET", "/users?q=" .. user_email:sub(1, 12):upper(), {headers = h})
    assert.equal(200, res.status)
    assert.equal(1, #res.json.users)
    assert.equal(user.id, res.json.users[1].id)

    res = srv:request("POST", "/users", {headers = h, body = {email = user_email}})
    assert.equal(409, res.status)
    assert.equal("conflict", res.json.error.code)

    res = srv:request("DELETE", "/users/" .. user.id, {headers = h})
    assert.equal(200, res.status)
    assert.equal(user.id, res.json.user.id)
    res = srv:request("GET", "/users/" .. user.id, {headers = h})
    assert.equal(404, res.status)
    assert.equal("not_found", res.json.error.code)
  end)

  it("paginates /users with an opaque cursor and an empty list as []", function()
    local h = bearer(state.access)
    local tag = unique("page")
    for i = 1, 3 do
      assert.equal(201, srv:request("POST", "/users", {headers = h, body = {email = ("%s-%d@example.com"):format(tag, i)}}).status)
    end
    local res = srv:request("GET", "/users?limit=2&q=" .. tag, {headers = h})
    assert.equal(2, #res.json.users)
    assert.is_string(res.json.next_cursor)
    res = srv:request("GET", "/users?limit=2&q=" .. tag .. "&cursor=" .. res.json.next_cursor, {headers = h})
    assert.equal(1, #res.json.users)
    res = srv:request("GET", "/users?q=" .. unique("none"), {headers = h})
    assert.equal(200, res.status)
    assert.matches('"users":%[%]', res.body)
    res = srv:request("GET", "/users?cursor=forged", {headers = h})
    assert.equal(400, res.status)
    assert.equal("bad_request", res.json.error.code)
  end)

  it("provokes the request-level error rows of docs/api.md", function()
    local h = bearer(state.access)
    local as_json = {Authorization = h.Authorization, ["Content-Type"] = "application/json"}
    local res = srv:request("GET", "/user?id=abc", {headers = h})
    assert.equal(400, res.status)
    assert.equal("bad_request", res.json.error.code)
    for _, id in ipairs({"0", "-1", "1.5", "99999999999999999999"}) do
      assert.equal(400, srv:request("GET", "/user?id=" .. id, {headers = h}).status, id)
    end
    res = srv:request("GET", "/users?limit=101", {headers = h})
    assert.equal(400, res.status)
    res = srv:request("GET", "/user?id=987654321", {headers = h})
    assert.equal(404, res.status)
    res = srv:request("POST", "/users", {headers = as_json, body = "{not json"})
    assert.equal(400, res.status)
    assert.equal("invalid_json", res.json.error.code)
    res = srv:request("POST", "/users", {headers = as_json, body = "[1,2]"})
    assert.equal(400, res.status)
    res = srv:request("POST", "/users", {headers = {Authorization = h.Authorization, ["Content-Type"] = "text/plain"}, body = "hello"})
    assert.equal(415, res.status)
    assert.equal("unsupported_media_type", res.json.error.code)
    res = srv:request("POST", "/users", {headers = h, body = {email = "not-an-email"}})
    assert.equal(422, res.status)
    assert.equal("validation_failed", res.json.error.code)
    assert.is_string(res.json.error.fields.email)
    res = srv:request("POST", "/users", {headers = h, body = {email = 123}})
    assert.equal(422, res.status)
    assert.is_string(res.json.error.fields.email)
    res = srv:request("DELETE", "/users", {headers = h})
    assert.equal(405, res.status)
    assert.matches("GET", res.headers.allow)
    res = srv:request("POST", "/users", {headers = as_json, body = string.rep(" ", 70000)})
    assert.equal(413, res.status)
    assert.equal("payload_too_large", res.json.error.code)
  end)

  it("rotates the refresh token, and reuse of a rotated one revokes the family", function()
    local res = srv:request("POST", "/auth/refresh", {body = {refresh_token = state.refresh}})
    assert.equal(200, res.status, res.body)
    local rotated = res.json.refresh_token
    assert.not_equal(state.refresh, rotated)
    res = srv:request("POST", "/auth/refresh", {body = {refresh_token = state.refresh}})
    assert.equal(401, res.status)
    res = srv:request("POST", "/auth/refresh", {body = {refresh_token = rotated}})
    assert.equal(401, res.status, "the whole family is revoked")
    res = srv:request("POST", "/auth/refresh", {body = {refresh_token = state.access}})
    assert.equal(401, res.status, "an access token is not a refresh token")
  end)

  it("logs out: the access token is refused at once on every worker", function()
    local login = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
    local access = login.json.access_token
    for _ = 1, 6 do assert.equal(200, srv:request("GET", "/auth/me", {headers = bearer(access)}).status) end
    assert.equal(204, srv:request("POST", "/auth/logout", {headers = bearer(access)}).status)
    local pids = {}
    for _ = 1, 12 do
      local conn = assert(srv:connect())
      local res = conn:request("GET", "/auth/me", {headers = bearer(access)})
      conn:close()
      assert.equal(401, res.status)
    end
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "request" and line.path == "/auth/me" and line.status == 401 then pids[line.pid] = true end
    end
    local workers = 0
    for _ in pairs(pids) do workers = workers + 1 end
    assert.equal(2, workers, "both workers refused the revoked token")
    assert.equal(401, srv:request("POST", "/auth/refresh", {body = {refresh_token = login.json.refresh_token}}).status)
    -- the token itself still verifies (host.jwt may remember it); the
    -- session check refuses it on the reads too
    assert.equal(401, srv:request("GET", "/users?limit=5", {headers = bearer(access)}).status)
    assert.equal(401, srv:request("GET", "/users/1", {headers = bearer(access)}).status)
  end)

  it("answers 429 with Retry-After after repeated failed logins", function()
    local limited
    for _ = 1, 7 do
      local res = srv:request("POST", "/auth/login", {body = {email = email, password = "wrong password!"}})
      if res.status == 429 then limited = res; break end
      assert.equal(401, res.status)
    end
    assert.is_not_nil(limited)
    assert.equal("rate_limited", limited.json.error.code)
    assert.matches("^%d+$", limited.headers["retry-after"])
  end)

  it("resets a forgotten password from the mailed link, which ends every session", function()
    local res = srv:request("POST", "/auth/password/forgot", {body = {email = email}})
    assert.equal(202, res.status)
    assert.equal(202, srv:request("POST", "/auth/password/forgot", {body = {email = unique("nobody") .. "@example.com"}}).status)
    local raw = assert(util.wait_for(15, function()
      local msg = mailbox.message_to(sink.dir, email, 0.1)
      return msg and msg:find("/auth/password/reset", 1, true) and msg
    end), "no reset mail")
    local link, token = mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
    assert.is_string(link)
    local page = srv:request("GET", link:sub(#srv.env.PUBLIC_URL + 1), {headers = {Accept = "text/html"}})
    assert.equal(200, page.status)
    assert.matches("^text/html", page.headers["content-type"])
    local new_password = "a whole new passphrase"
    res = srv:request("POST", "/auth/password/reset", {body = {token = token, password = new_password}})
    assert.equal(204, res.status, res.body)
    res = srv:request("POST", "/auth/password/reset", {body = {token = token, password = new_password .. "!"}})
    assert.equal(400, res.status)
    assert.equal("invalid_token", res.json.error.code)
    res = srv:request("POST", "/auth/login", {body = {email = email, password = new_password}})
    assert.equal(200, res.status, "a reset clears the failed-login count")
    password = new_password
    state.access = res.json.access_token
  end)

  it("reads, updates and deletes the admin's own account", function()
    local h = bearer(state.access)
    local res = srv:request("GET", "/auth/me", {headers = h})
    assert.equal(200, res.status)
    assert.equal(email, res.json.admin.email)
    res = srv:request("PUT", "/auth/me", {headers = h, body = {password = "another passphrase"}})
    assert.equal(422, res.status, "current_password is required")
    res = srv:request("PUT", "/auth/me", {headers = h, body = {name = name .. "2"}})
    assert.equal(200, res.status, res.body)
    res = srv:request("GET", "/auth/admins", {headers = h})
    assert.equal(200, res.status)
    assert.is_table(res.json.admins)
    res = srv:request("DELETE", "/auth/me", {headers = h})
    assert.equal(422, res.status, "current_password is required to delete the account")
    res = srv:request("DELETE", "/auth/me", {headers = h, body = {current_password = "not the password"}})
    assert.equal(401, res.status)
    assert.equal("invalid_credentials", res.json.error.code)
    assert.equal(200, srv:request("GET", "/auth/me", {headers = h}).status, "still there")
    res = srv:request("DELETE", "/auth/me", {headers = h, body = {current_password = password}})
    assert.equal(204, res.status, res.body)
    assert.equal(401, srv:request("GET", "/auth/me", {headers = h}).status)
  end)

  it("keeps serving after the journey", function()
    assert.equal(200, srv:request("GET", "/readyz").status)
  end)
end)

describe("mail without MAIL_URL", function()
  it("writes the confirmation mail to the outbox folder with a working link", function()
    local srv = server.start({})
    local email = unique("lin") .. "@example.com"
    local res = srv:request("POST", "/auth/register",
      {body = {email = email, name = unique("lin"):sub(1, 30), password = "long enough password"}})
    assert.equal(201, res.status, res.body)
    local raw = assert(mailbox.message_to(srv.outbox, email), "no .eml in the outbox")
    local link = mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    assert.equal(200, srv:request("GET", link:sub(#srv.env.PUBLIC_URL + 1)).status)
    srv:stop()
  end)
end)

describe("an expired access token", function()
  it("is refused with 401 token_expired and WWW-Authenticate", function()
    local api = require "support.api"
    local srv = server.start({env = {ACCESS_TOKEN_TTL_S = "1"}})
    local session = api.admin_session(srv)
    socket.sleep(2.2)
    local res = srv:request("GET", "/users", {headers = bearer(session.access)})
    assert.equal(401, res.status)
    assert.equal("token_expired", res.json.error.code)
    assert.equal("Bearer", res.headers["www-authenticate"])
    local fresh = srv:request("POST", "/auth/refresh", {body = {refresh_token = session.refresh}})
    assert.equal(200, fresh.status, "the refresh token still works")
    srv:stop()
  end)
end)
