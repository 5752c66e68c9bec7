-- Security edge cases an auditor finds (issue 14), each against the real
-- binary, real PostgreSQL and a real SMTP server, and each failing on the
-- code before its fix: a burst of concurrent logins past the failed-login
-- limit, a Unicode case variant of an address, HEAD on a route that
-- rotates, a reset link mailed before a password change, the account
-- deleted with an access token alone, a session refreshed past its
-- absolute lifetime, the per-client hashing budget and X-Forwarded-For, a
-- yielding binding called where the coroutine cannot yield (also under
-- ASan, in the e2e-asan pass), and the timing of reset requests.
local server = require "support.server"
local mailbox = require "support.mailbox"
local api = require "support.api"
local util = require "support.util"
local socket = require "socket"

local bearer = api.bearer


-- n copies of one request at once (curl processes): the statuses, sorted.
local function burst(srv, n, method, path, json)
  local _, out = util.sh(([[for i in $(seq %d); do
      curl -s -o /dev/null -w '%%{http_code}\n' --max-time 60 -X %s -H 'Content-Type: application/json' \
        -d '%s' http://127.0.0.1:%d%s &
    done; wait]]):format(n, method, json, srv.port, path))
  local statuses = {}
  for code in out:gmatch("(%d%d%d)") do statuses[#statuses + 1] = tonumber(code) end
  table.sort(statuses)
  return statuses
end

local function count(list, value)
  local n = 0
  for _, v in ipairs(list) do if v == value then n = n + 1 end end
  return n
end

describe("security:", function()
  local srv, sink

  setup(function()
    sink = mailbox.start_sink(util.free_port(), util.tmpdir("mail"))
    srv = server.start({workers = 2, env = {
      MAIL_URL = ("smtp://127.0.0.1:%d"):format(sink.port), MAIL_TLS = "off",
    }})
  end)

  teardown(function()
    if srv then srv:stop() end
    if sink then sink.stop() end
  end)

  it("lets no more than LOGIN_FAILURE_LIMIT (20) of 150 concurrent wrong passwords be tried", function()
    local admin = api.admin_session(srv, sink.dir)
    local statuses = burst(srv, 150, "POST", "/auth/login",
      ('{"email":"%s","password":"not the password"}'):format(admin.email))
    assert.equal(150, #statuses)
    local tried, limited, busy = count(statuses, 401), count(statuses, 429), count(statuses, 503)
    assert.is_true(tried <= 20, ("%d wrong passwords were tried"):format(tried))
    assert.is_true(tried > 0)
    assert.equal(150, tried + limited + busy, table.concat(statuses, " "))
    -- and the right password is refused too while the window lasts
    local res = srv:request("POST", "/auth/login", {body = {email = admin.email, password = admin.password}})
    assert.equal(429, res.status)
  end)

  it("refuses a Unicode case variant of an address (U+212A for k) instead of taking it as a new key", function()
    local name = api.unique("kk")
    local email = name .. "@example.com"
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = name, password = "kelvin sign passphrase"}})
    assert.equal(201, res.status, res.body)
    local kelvin = "\226\132\170" .. email:sub(2) -- the first "k" as KELVIN SIGN
    for _, path in ipairs({"/auth/login", "/auth/register", "/auth/password/forgot", "/auth/confirm/resend"}) do
      res = srv:request("POST", path, {body = {email = kelvin, name = name .. "x", password = "kelvin sign passphrase"}})
      assert.equal(422, res.status, path .. ": " .. res.body)
      assert.equal("validation_failed", res.json.error.code)
      assert.matches("ASCII", res.json.error.fields.email)
    end
    -- upper-case ASCII is the same address, not another one
    res = srv:request("POST", "/auth/register", {body = {email = email:upper(), name = name .. "y", password = "another passphrase"}})
    assert.equal(409, res.status)
    assert.is_string(res.json.error.fields.email)
  end)

  it("answers HEAD /auth/refresh with 405 and Allow, and spends no refresh token", function()
    local admin = api.admin_session(srv, sink.dir)
    local res = srv:request("HEAD", "/auth/refresh", {headers = bearer(admin.refresh)})
    assert.equal(405, res.status)
    local allow = res.headers["allow"]
    assert.is_string(allow)
    assert.not_matches("HEAD", allow)
    assert.matches("GET", allow)
    assert.matches("POST", allow)
    res = srv:request("POST", "/auth/refresh", {body = {refresh_token = admin.refresh}})
    assert.equal(200, res.status, "the token still works: " .. res.body)
    assert.equal(200, srv:request("GET", "/auth/me", {headers = bearer(res.json.access_token)}).status)
    -- HEAD stays on the routes that change nothing
    assert.equal(200, srv:request("HEAD", "/healthz").status)
  end)

  it("ends every unused reset link when the password is changed", function()
    local admin = api.admin_session(srv, sink.dir)
    assert.equal(202, srv:request("POST", "/auth/password/forgot", {body = {email = admin.email}}).status)
    local raw = assert(util.wait_for(15, function()
      local msg = mailbox.message_to(sink.dir, admin.email, 1)
      return msg and msg:find("/auth/password/reset", 1, true) and msg
    end), "no reset mail")
    local _, token = mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
    local res = srv:request("PUT", "/auth/me", {headers = bearer(admin.access),
      body = {password = "changed passphrase", current_password = admin.password}})
    assert.equal(200, res.status, res.body)
    res = srv:request("POST", "/auth/password/reset", {body = {token = token, password = "attacker passphrase"}})
    assert.equal(400, res.status, res.body)
    assert.equal("invalid_token", res.json.error.code)
    res = srv:request("POST", "/auth/login", {body = {email = admin.email, password = "changed passphrase"}})
    assert.equal(200, res.status)
  end)

  it("deletes the account only with its password: 422 without, 401 when wrong, 204 when right", function()
    local admin = api.admin_session(srv, sink.dir)
    local h = bearer(admin.access)
    local res = srv:request("DELETE", "/auth/me", {headers = h})
    assert.equal(422, res.status)
    assert.is_string(res.json.error.fields.current_password)
    res = srv:request("DELETE", "/auth/me", {headers = h, body = {current_password = "a stolen token's guess"}})
    assert.equal(401, res.status)
    assert.equal("invalid_credentials", res.json.error.code)
    assert.equal(200, srv:request("GET", "/auth/me", {headers = h}).status)
    res = srv:request("DELETE", "/auth/me", {headers = h, body = {current_password = admin.password}})
    assert.equal(204, res.status, res.body)
    assert.equal(401, srv:request("GET", "/auth/me", {headers = h}).status)
  end)

  it("mails reset links to known and unknown addresses after the same work, in similar time", function()
    local admin = api.admin_session(srv, sink.dir)
    local known_t, unknown_t = {}, {}
    -- MAIL_RATE_LIMIT (5) per address: a new known address every 4 tries
    local known = admin.email
    for i = 1, 24 do
      if i % 4 == 1 and i > 1 then known = api.admin_session(srv, sink.dir).email end
      local t0 = socket.gettime()
      local res = srv:request("POST", "/auth/password/forgot", {body = {email = known}})
      known_t[i] = socket.gettime() - t0
      assert.equal(202, res.status, res.body)
      t0 = socket.gettime()
      res = srv:request("POST", "/auth/password/forgot", {body = {email = api.unique("ghost") .. "@example.com"}})
      unknown_t[i] = socket.gettime() - t0
      assert.equal(202, res.status, res.body)
    end
    local mk, mu = util.median(known_t), util.median(unknown_t)
    local ratio = mu / mk
    print(("\n  reset request timing over 24 tries: known address median %.2f ms, unknown %.2f ms, ratio %.3f")
      :format(mk * 1000, mu * 1000, ratio))
    assert.is_true(ratio > 0.5 and ratio < 2, ("ratio %.3f"):format(ratio))
  end)
end)

describe("security: SESSION_MAX_AGE_S", function()
  local srv

  setup(function()
    srv = server.start({workers = 1, env = {SESSION_MAX_AGE_S = "3"}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("refuses a refresh, and the session's access tokens, once the session is older than its absolute lifetime", function()
    local admin = api.admin_session(srv)
    server.sleep(1)
    local res = srv:request("POST", "/auth/refresh", {body = {refresh_token = admin.refresh}})
    assert.equal(200, res.status, "within the lifetime: " .. res.body)
    local tokens = res.json
    server.sleep(2.5)
    res = srv:request("POST", "/auth/refresh", {body = {refresh_token = tokens.refresh_token}})
    assert.equal(401, res.status, "past the lifetime, however recently refreshed")
    assert.equal(401, srv:request("GET", "/auth/me", {headers = bearer(tokens.access_token)}).status)
    -- a new login starts a new session
    res = srv:request("POST", "/auth/login", {body = {email = admin.email, password = admin.password}})
    assert.equal(200, res.status)
  end)
end)

describe("security: the per-client hashing budget", function()
  local srv
  local client = require "support.http_client"
  local PROXY = "127.0.0.2"

  -- The budget lives in the database for a minute: each run of the suite
  -- (the plain and the sanitizer pass share one database) uses addresses
  -- of its own.
  local function fresh_loopback()
    return ("127.%d.%d.%d"):format(math.random(1, 254), math.random(0, 255), math.random(1, 254))
  end
  local function fresh_public()
    return ("203.0.%d.%d"):format(math.random(0, 255), math.random(1, 254))
  end

  local function login(from, email, xff)
    local conn = assert(client.connect(srv.port, 15, from))
    local res = conn:request("POST", "/auth/login", {headers = {["X-Forwarded-For"] = xff,
      ["Content-Type"] = "application/json"}, body = {email = email, password = "whatever it is"}, keepalive = false})
    conn:close()
    return res
  end

  local function clients_logged()
    server.sleep(0.2)
    local seen = {}
    for _, l in ipairs(srv:log_lines()) do
      if l.msg == "request" and l.path == "/auth/login" then seen[l.client] = true end
    end
    return seen
  end

  setup(function()
    srv = server.start({workers = 2, env = {CLIENT_HASH_BUDGET_PER_MIN = "5", TRUSTED_PROXIES = PROXY .. "/32"}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("refuses the hashing routes past the budget with 429, per client address, ignoring an untrusted X-Forwarded-For", function()
    local email = api.unique("budget") .. "@example.com"
    local me, other = fresh_loopback(), fresh_loopback()
    for i = 1, 5 do
      assert.equal(401, login(me, email, "198.51.100." .. i).status)
    end
    local res = login(me, email, "198.51.100.99")
    assert.equal(429, res.status)
    assert.equal("rate_limited", res.json.error.code)
    assert.matches("^%d+$", res.headers["retry-after"])
    local conn = assert(client.connect(srv.port, 15, me))
    res = conn:request("POST", "/auth/register", {headers = {["Content-Type"] = "application/json"},
      body = {email = api.unique("r") .. "@example.com", name = api.unique("r"), password = "long enough passphrase"},
      keepalive = false})
    conn:close()
    assert.equal(429, res.status, "registration shares the budget")
    assert.equal(401, login(other, email).status, "another client has its own budget")
    local seen = clients_logged()
    assert.is_true(seen[me], "the access line names the client")
    assert.is_nil(seen["198.51.100.1"], "an untrusted peer's X-Forwarded-For is not believed")
  end)

  it("takes the client from X-Forwarded-For when the peer is a trusted proxy", function()
    local email = api.unique("proxied") .. "@example.com"
    local one, two = fresh_public(), fresh_public()
    for _ = 1, 5 do assert.equal(401, login(PROXY, email, one .. ", " .. PROXY).status) end
    assert.equal(429, login(PROXY, email, one).status, "one client, through the proxy")
    assert.equal(401, login(PROXY, email, "spoofed, " .. two).status, "the right-most untrusted entry counts")
    local seen = clients_logged()
    assert.is_true(seen[one])
    assert.is_true(seen[two])
    assert.is_nil(seen["spoofed"])
  end)
end)

describe("security: a yielding binding where the coroutine cannot yield", function()
  local srv, dir

  setup(function()
    dir = server.scripts_with("noyield", [[
      local password = require "host.password"
      local db = require "host.db"
      return {
        {"GET", "/sort-hash", function()
          local list = {"b", "a", "c"}
          table.sort(list, function(x, y) return #password.hash(x) < #password.hash(y) end)
          return {status = 200, body = {}}
        end},
        {"GET", "/sort-query", function()
          local list = {2, 1, 3}
          table.sort(list, function(x, y) return db.query("SELECT 1") and x < y end)
          return {status = 200, body = {}}
        end},
        {"GET", "/own-coroutine", function()
          local hash = coroutine.wrap(function() return password.hash("inside my coroutine") end)()
          return {status = 200, body = {hash = hash}}
        end},
      }
    ]])
    srv = server.start({scripts = dir, workers = 1})
  end)

  teardown(function()
    if srv then srv:stop() end
    if dir then os.execute(("rm -rf %q"):format(dir)) end
  end)

  it("fails the request with a clear error, starts no work, and the worker serves on", function()
    for _, path in ipairs({"/sort-hash", "/sort-query", "/own-coroutine"}) do
      for _ = 1, 5 do
        local res = srv:request("GET", path)
        assert.equal(500, res.status, path)
      end
    end
    server.sleep(1) -- a hash submitted anyway would finish now and resume a task that is gone
    assert.equal(200, srv:request("GET", "/healthz").status)
    local errors = {}
    for _, l in ipairs(srv:log_lines()) do
      if l.msg == "script error" then errors[#errors + 1] = l.error end
    end
    local all = table.concat(errors, "\n")
    assert.matches("password.hash cannot wait here", all)
    assert.matches("db.query cannot wait here", all)
    assert.matches("password.hash can only wait in the request's own coroutine", all)
    srv:stop()
    srv:assert_no_sanitizer_reports()
    srv = nil
  end)
end)
