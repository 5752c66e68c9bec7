-- The log as an operator reads it: one JSON object per line on stdout with
-- time, level, msg and the request id, filtered by LOG_LEVEL; and, after a
-- whole journey (register with real SMTP, confirm, log in, users, refresh,
-- log out, forgotten password), not one secret in it.
local server = require "support.server"
local mailbox = require "support.mailbox"
local util = require "support.util"

local function unique(prefix)
  return ("%s%d%d"):format(prefix, os.time() % 100000, math.random(1, 1e6))
end

local function bearer(token) return {Authorization = "Bearer " .. token} end

local LEVELS = {debug = true, info = true, warn = true, error = true}

describe("the log of a whole journey", function()
  local srv, sink
  local secrets = {}        -- name -> value that must never be logged
  local ids = {}            -- step -> X-Request-Id sent
  local n = 0

  -- A request with its own X-Request-Id, remembered under `step`.
  local function call(step, method, path, opts)
    opts = opts or {}
    n = n + 1
    local id = ("logs-%s-%d"):format(step, n)
    ids[step] = id
    local headers = {["X-Request-Id"] = id}
    for k, v in pairs(opts.headers or {}) do headers[k] = v end
    return srv:request(method, path, {headers = headers, body = opts.body})
  end

  local function keep(name, value)
    assert.is_string(value, name)
    assert.is_true(#value >= 8, name .. " is long enough to grep for")
    secrets[name] = value
  end

  setup(function()
    local port = util.free_port()
    sink = mailbox.start_sink(port, util.tmpdir("mail"))
    local db_password = "db-pw-" .. unique("x")
    local url = assert(os.getenv("DATABASE_URL"), "tools/test.sh sets DATABASE_URL")
    -- trust auth on the test cluster ignores the password; the URL still carries it
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "password=" .. db_password
    local jwt_secret = "logs-spec-jwt-secret-" .. unique("k") .. "-0123456789abcdef"
    srv = server.start({workers = 2, env = {
      DATABASE_URL = url, JWT_SECRET = jwt_secret, LOG_LEVEL = "debug",
      MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off",
    }})
    keep("database password", db_password)
    keep("JWT_SECRET", jwt_secret)
  end)

  teardown(function()
    if srv then srv:stop() end
    if sink then sink.stop() end
  end)

  it("runs the journey", function()
    local email = unique("eve") .. "@example.com"
    local name = unique("eve")
    local password = "first passphrase " .. unique("p")
    local cookie = "session-cookie-" .. unique("c")
    keep("password", password)
    keep("Cookie value", cookie)

    local res = call("register", "POST", "/auth/register", {body = {email = email, name = name, password = password},
      headers = {Cookie = "sid=" .. cookie}})
    assert.equal(201, res.status, res.body)

    local raw = assert(mailbox.message_to(sink.dir, email), "no confirmation mail")
    local link, confirm = mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    keep("confirmation token", confirm)
    assert.equal(200, call("confirm", "GET", link:sub(#srv.env.PUBLIC_URL + 1)).status)

    res = call("login", "POST", "/auth/login", {body = {email = email, password = password}})
    assert.equal(200, res.status, res.body)
    local access, refresh = res.json.access_token, res.json.refresh_token
    keep("access token", access)
    keep("refresh token", refresh)
    keep("Authorization value", "Bearer " .. access)

    local h = bearer(access)
    res = call("create", "POST", "/users", {headers = h, body = {email = unique("u") .. "@example.com", name = "U"}})
    assert.equal(201, res.status, res.body)
    local id = res.json.user.id
    assert.equal(200, call("read", "GET", "/users/" .. id, {headers = h}).status)
    assert.equal(200, call("update", "PUT", "/user?id=" .. id, {headers = h, body = {name = "V"}}).status)
    assert.equal(200, call("list", "GET", "/users?limit=5", {headers = h}).status)
    assert.equal(200, call("delete", "DELETE", "/users/" .. id, {headers = h}).status)
    assert.equal(401, call("bad_token", "GET", "/users", {headers = bearer(access .. "x")}).status)

    res = call("refresh", "POST", "/auth/refresh", {body = {refresh_token = refresh}})
    assert.equal(200, res.status, res.body)
    keep("rotated refresh token", res.json.refresh_token)
    keep("refreshed access token", res.json.access_token)
    res = call("refresh_header", "POST", "/auth/refresh", {headers = bearer(res.json.refresh_token)})
    assert.equal(200, res.status, res.body)
    keep("refresh token from the header route", res.json.refresh_token)
    assert.equal(204, call("logout", "POST", "/auth/logout", {headers = bearer(res.json.access_token)}).status)

    assert.equal(202, call("forgot", "POST", "/auth/password/forgot", {body = {email = email}}).status)
    raw = assert(util.wait_for(15, function()
      local msg = mailbox.message_to(sink.dir, email, 0.1)
      return msg and msg:find("/auth/password/reset", 1, true) and msg
    end), "no reset mail")
    local reset_link, reset = mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
    keep("reset token", reset)
    local reset_path = reset_link:sub(#srv.env.PUBLIC_URL + 1)
    assert.equal(200, call("reset_page", "GET", reset_path, {headers = {Accept = "text/html"}}).status)
    local new_password = "second passphrase " .. unique("p")
    keep("new password", new_password)
    res = call("reset", "POST", "/auth/password/reset", {body = {token = reset, password = new_password}})
    assert.equal(204, res.status, res.body)
    res = call("relogin", "POST", "/auth/login", {body = {email = email, password = new_password}})
    assert.equal(200, res.status, res.body)
    keep("last access token", res.json.access_token)
    assert.equal(401, call("wrong_login", "POST", "/auth/login", {body = {email = email, password = password}}).status)
  end)

  it("writes every line as one JSON object with time, level, msg, pid and role", function()
    local lines = srv:log_lines()
    assert.is_true(#lines > 30)
    for i, line in ipairs(lines) do
      assert.is_nil(line.unparsed, ("line %d is not JSON: %s"):format(i, tostring(line.unparsed)))
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", line.time)
      assert.is_true(LEVELS[line.level] ~= nil, "level " .. tostring(line.level))
      assert.is_string(line.msg)
      assert.is_number(line.pid)
      assert.is_true(line.role == "master" or line.role == "worker", tostring(line.role))
    end
    -- numbers as the host writes them: whole status codes, milliseconds with three decimals
    local access = 0
    for text in srv:log_text():gmatch("[^\n]+") do
      if text:find('"msg":"request"', 1, true) then
        access = access + 1
        assert.matches('"status":[1-5]%d%d,', text)
        assert.matches('"duration_ms":%d+%.%d%d%d[,}]', text)
      end
    end
    assert.is_true(access > 10)
  end)

  it("gives every line of a request that request's id", function()
    local access, by_msg = {}, {}
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "request" then access[line.request_id] = line end
      by_msg[line.msg] = by_msg[line.msg] or {}
      table.insert(by_msg[line.msg], line)
    end
    for step, id in pairs(ids) do
      assert.is_table(access[id], "no access line for " .. step)
    end
    local function logged_in(msg, id)
      for _, line in ipairs(by_msg[msg] or {}) do
        if line.request_id == id then return true end
      end
      return false
    end
    assert.is_true(logged_in("admin registered", ids.register))
    assert.is_true(logged_in("admin confirmed", ids.confirm))
    assert.is_true(logged_in("admin logged in", ids.login))
    assert.is_true(logged_in("user created", ids.create))
    assert.is_true(logged_in("password reset", ids.reset))
    assert.is_true(logged_in("admin logged in", ids.relogin))
  end)

  it("logs the path of a link with its token redacted", function()
    local confirm_line
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "request" and line.request_id == ids.confirm then confirm_line = line end
    end
    assert.equal("/auth/confirm?token=[redacted]", confirm_line.path)
  end)

  it("never writes a password, a token, a secret or a header value", function()
    local text = srv:log_text()
    assert.is_true(#text > 0)
    local count = 0
    for what, value in pairs(secrets) do
      count = count + 1
      local at = text:find(value, 1, true)
      assert.is_nil(at, what .. " is in the log:\n" .. (at and text:sub(math.max(1, at - 300), at + 100) or ""))
    end
    assert.is_true(count >= 14, "every secret of the journey was collected")
  end)
end)

describe("LOG_LEVEL", function()
  -- a route that logs at every level, with secrets in nested fields, and prints
  local LOUD = [[
local log = require "host.log"
local http = require "lib.http"
return {
  {"GET", "/loud", function()
    log.debug("loud debug", {n = 1})
    log.info("loud info", {n = 2})
    log.warn("loud warn", {password = "pw-top-level", nested = {api_token = "tok-nested", ok = "visible"},
                           list = {{client_secret = "secret-in-list"}}, Cookie = "cookie-value"})
    log.error("loud error", {n = 4})
    print("printed", 42, true)
    return http.ok({ok = true})
  end},
}
]]
  local scripts

  setup(function()
    scripts = server.scripts_with("loud", LOUD)
  end)

  teardown(function()
    os.execute(("rm -rf %q"):format(scripts))
  end)

  local function lines_of(srv, pattern)
    local out = {}
    for _, line in ipairs(srv:log_lines()) do
      if line.msg:find(pattern) then out[#out + 1] = line end
    end
    return out
  end

  it("warn keeps warn and error lines and drops debug and info, access lines included", function()
    local srv = server.start({scripts = scripts, env = {LOG_LEVEL = "warn"}})
    assert.equal(200, srv:request("GET", "/loud", {headers = {["X-Request-Id"] = "loud-1"}}).status)
    srv:stop()
    local levels = {}
    for _, line in ipairs(srv:log_lines()) do
      assert.is_nil(line.unparsed, tostring(line.unparsed))
      levels[line.level] = (levels[line.level] or 0) + 1
    end
    assert.is_nil(levels.debug)
    assert.is_nil(levels.info)
    local warn = lines_of(srv, "^loud warn$")[1]
    assert.is_table(warn)
    assert.equal("loud-1", warn.request_id)
    assert.equal(1, #lines_of(srv, "^loud error$"))
  end)

  it("redacts secret-looking fields at any depth", function()
    local srv = server.start({scripts = scripts, env = {LOG_LEVEL = "warn"}})
    srv:request("GET", "/loud")
    srv:stop()
    local warn = lines_of(srv, "^loud warn$")[1]
    assert.equal("[redacted]", warn.password)
    assert.equal("[redacted]", warn.Cookie)
    assert.same({api_token = "[redacted]", ok = "visible"}, warn.nested)
    assert.same({{client_secret = "[redacted]"}}, warn.list)
    local text = srv:log_text()
    for _, value in ipairs({"pw-top-level", "tok-nested", "secret-in-list", "cookie-value"}) do
      assert.is_nil(text:find(value, 1, true), value)
    end
  end)

  it("debug keeps everything, and print() becomes a JSON line with the request id", function()
    local srv = server.start({scripts = scripts, env = {LOG_LEVEL = "debug"}})
    srv:request("GET", "/loud", {headers = {["X-Request-Id"] = "loud-2"}})
    srv:stop()
    for _, msg in ipairs({"^loud debug$", "^loud info$", "^loud warn$", "^loud error$"}) do
      assert.equal(1, #lines_of(srv, msg), msg)
    end
    local printed = lines_of(srv, "^printed\t42\ttrue$")[1]
    assert.is_table(printed, "print() is logged")
    assert.equal("info", printed.level)
    assert.equal("print", printed.source)
    assert.equal("loud-2", printed.request_id)
  end)

  it("keeps every line whole when two busy workers write into one pipe, as under Docker", function()
    local srv = server.start({workers = 2, pipe = "slow", env = {LOG_LEVEL = "info"}})
    local n = 4000
    -- 50 connections at once: both workers batch many lines per write
    local ok = os.execute(("curl -s --no-progress-meter --parallel --parallel-max 50 -o /dev/null "
      .. "'http://127.0.0.1:%d/healthz?pad=%s&n=[1-%d]'"):format(srv.port, ("x"):rep(200), n))
    assert.is_true(ok == true or ok == 0, "curl ran")
    srv:stop()
    local access = 0
    for _, line in ipairs(srv:log_lines()) do
      assert.is_nil(line.unparsed, line.unparsed)
      if line.msg == "request" and line.path and line.path:find("^/healthz%?pad=") then access = access + 1 end
    end
    assert.equal(n, access)
  end)

  it("refuses a value it does not know, with a JSON line, before starting", function()
    local srv = server.start({env = {LOG_LEVEL = "verbose"}, wait = false})
    local how, code = srv:wait_exit(10)
    assert.equal("exited", how)
    assert.equal(2, code)
    local line = srv:log_lines()[1]
    assert.is_table(line)
    assert.equal("error", line.level)
    assert.equal("LOG_LEVEL", line.variable)
    assert.equal("verbose", line.value)
  end)
end)
