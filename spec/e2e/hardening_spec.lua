-- Hardening (issue 8): what an attacker tries from the first day, against
-- the real binary, real PostgreSQL and a real SMTP server. One named case
-- per row of the issue; each asserts the exact answer and that the service
-- is still healthy afterwards, and every server's whole log is searched for
-- every password and token the suite used.
local server = require "support.server"
local client = require "support.http_client"
local mailbox = require "support.mailbox"
local util = require "support.util"
local socket = require "socket"
local cjson = require "cjson.safe"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local signal = require "posix.signal"

local PYTHON = "/usr/bin/python3"
local JWT_SECRET = os.getenv("JWT_SECRET") or "spec-secret-spec-secret-spec-secret-0123456789"

-- ---- helpers ------------------------------------------------------------------

local started = {}   -- every server of the suite, for the log search at the end
local secrets = {JWT_SECRET}

local function secret(s)
  if type(s) == "string" and #s >= 8 then secrets[#secrets + 1] = s end
  return s
end

local function start(opts)
  opts.env = opts.env or {}
  opts.env.JWT_SECRET = JWT_SECRET
  local srv = server.start(opts)
  started[#started + 1] = srv
  return srv
end

local counter = 0
local function unique(prefix)
  counter = counter + 1
  return ("%s%d%d%d"):format(prefix, os.time() % 100000, math.random(1000, 9999), counter)
end

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return (out:gsub("__exit=%d+%s*$", "")), code
end

local function sql(url, query)
  local out, code = run(("psql %s -XtAqc %s"):format(sh(url), sh(query)))
  assert(code == 0, "psql failed: " .. out)
  return (out:gsub("%s+$", ""))
end

local function urlencode(s)
  return (s:gsub("[^%w%-_.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function bearer(token) return {Authorization = "Bearer " .. token} end

local function json_headers(extra)
  local h = {["Content-Type"] = "application/json"}
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- The service answers its liveness and readiness probes.
local function assert_healthy(srv)
  local res = srv:request("GET", "/healthz")
  assert.is_table(res, "no answer from /healthz")
  assert.equal(200, res.status)
  res = srv:request("GET", "/readyz")
  assert.equal(200, res.status, res.body)
end

-- The API.md error shape, with this code.
local function assert_error(res, status, code)
  assert.is_table(res, "no answer")
  assert.equal(status, res.status, res.body)
  assert.is_table(res.json, "not JSON: " .. tostring(res.body))
  assert.equal(code, res.json.error.code, res.body)
  assert.is_string(res.json.error.message)
  assert.is_string(res.headers["x-request-id"])
end

-- Sends raw bytes on a new connection and reads one reply (nil, err when
-- the server closed without one).
local function raw(srv, bytes, timeout)
  local conn = assert(client.connect(srv.port, timeout or 10))
  conn:send_raw(bytes)
  local res, err = conn:read_response()
  conn:close()
  return res, err
end

-- True when the server closed the connection (EOF or reset).
local function closed_by_server(conn, seconds)
  conn.sock:settimeout(seconds or 2)
  local data, err = conn.sock:receive("*a")
  return err == nil or err == "closed", data
end

local function request_bytes(method, path, headers, body)
  local lines = {method .. " " .. path .. " HTTP/1.1", "Host: localhost"}
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function register_body(email, name, password)
  return cjson.encode({email = email, name = name, password = password})
end

local function count_admins(url, email)
  local quoted = email:gsub("'", "''")
  return tonumber(sql(url, ("SELECT count(*) FROM admins WHERE lower(email) = lower('%s')"):format(quoted)))
end

-- A registered, confirmed and logged-in admin.
local function new_admin(srv, inbox, tag)
  local a = {email = unique(tag or "adm") .. "@example.com", name = unique(tag or "adm"),
             password = secret("pw-" .. unique("secret") .. "-horse")}
  local res = srv:request("POST", "/auth/register", {body = {email = a.email, name = a.name, password = a.password}})
  assert.equal(201, res.status, res.body)
  a.id = res.json.admin.id
  local raw_mail = assert(mailbox.message_to(inbox, a.email, 20), "no confirmation mail for " .. a.email)
  local link, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
  secret(token)
  assert.equal(200, srv:request("GET", link:sub(#srv.env.PUBLIC_URL + 1)).status)
  local login = srv:request("POST", "/auth/login", {body = {email = a.email, password = a.password}})
  assert.equal(200, login.status, login.body)
  a.access, a.refresh = secret(login.json.access_token), secret(login.json.refresh_token)
  return a
end

-- A JWT signed outside the server: header and claims are tables, alg_hash
-- "sha256"/"sha512" (HMAC with key) or nil for an empty signature.
local function forge(header, claims, alg_hash, key)
  local script = [[
import os, hmac, hashlib, base64
b = lambda s: base64.urlsafe_b64encode(s).rstrip(b"=").decode()
data = b(os.environb[b"H"]) + "." + b(os.environb[b"P"])
alg = os.environ.get("A", "")
sig = b(hmac.new(os.environb[b"K"], data.encode(), getattr(hashlib, alg)).digest()) if alg else ""
print(data + "." + sig)
]]
  local out = run(("H=%s P=%s A=%s K=%s %s -c %s"):format(sh(cjson.encode(header)), sh(cjson.encode(claims)),
    sh(alg_hash or ""), sh(key or JWT_SECRET), PYTHON, sh(script)))
  return (out:gsub("%s+$", ""))
end

local function claims_of(token)
  local script = "import os,base64; p=os.environ['T'].split('.')[1]; "
    .. "print(base64.urlsafe_b64decode(p + '=' * (-len(p) % 4)).decode())"
  local out = run(("T=%s %s -c %s"):format(sh(token), PYTHON, sh(script)))
  return assert(cjson.decode(out))
end

-- Runs fn(i) -> line in a child process for `seconds`, one line per call,
-- into a file. Returns {pid, path}.
local function spawn_load(seconds, fn)
  local path = os.tmpname()
  io.stdout:flush()
  local pid = assert(unistd.fork())
  if pid == 0 then
    local ok = pcall(function()
      local f = assert(io.open(path, "w"))
      local deadline, i = socket.gettime() + seconds, 0
      while socket.gettime() < deadline do
        i = i + 1
        f:write(fn(i), "\n")
        f:flush()
      end
      f:close()
    end)
    unistd._exit(ok and 0 or 1)
  end
  return {pid = pid, path = path}
end

local function load_lines(load)
  wait.wait(load.pid)
  local lines = {}
  for line in io.lines(load.path) do lines[#lines + 1] = line end
  os.remove(load.path)
  return lines
end

local median = util.median

local function with_asan(extra)
  local base = os.getenv("ASAN_OPTIONS")
  if not base then return nil end
  return base .. ":" .. extra
end

-- ---- the main server ----------------------------------------------------------

describe("hardening:", function()
  local srv, sink, url

  setup(function()
    url = assert(os.getenv("DATABASE_URL"), "DATABASE_URL is not set (tools/test.sh sets it)")
    sink = mailbox.start_sink(util.free_port(), util.tmpdir("mail"))
    srv = start({workers = 2, env = {
      MAIL_URL = ("smtp://127.0.0.1:%d"):format(sink.port), MAIL_TLS = "off",
      LOGIN_FAILURE_LIMIT = "40",
    }})
  end)

  teardown(function()
    if srv then srv:stop() end
    if sink then sink.stop() end
  end)

  describe("HTTP", function()
    it("refuses a Content-Length body over the limit with 413 before any script runs", function()
      local email = unique("big") .. "@example.com"
      local body = register_body(email, unique("big"), "long enough password") .. string.rep(" ", 70000)
      local res = raw(srv, request_bytes("POST", "/auth/register",
        {"Content-Type: application/json", "Content-Length: " .. #body, "Connection: close"}, body))
      assert_error(res, 413, "payload_too_large")
      assert.equal(0, count_admins(url, email), "the registration must not have run")
      assert_healthy(srv)
    end)

    it("refuses a chunked body over the limit with 413 before any script runs", function()
      local email = unique("chunk") .. "@example.com"
      local conn = assert(srv:connect())
      conn:send_raw("POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n")
      local first = register_body(email, unique("chunk"), "long enough password")
      conn:send_raw(("%x\r\n%s\r\n"):format(#first, first))
      local pad = string.rep(" ", 30000)
      for _ = 1, 3 do conn:send_raw(("%x\r\n%s\r\n"):format(#pad, pad)) end
      conn:send_raw("0\r\n\r\n")
      local res = conn:read_response()
      conn:close()
      assert_error(res, 413, "payload_too_large")
      assert.equal(0, count_admins(url, email))
      assert_healthy(srv)
    end)

    it("refuses headers over the limit with a JSON 431", function()
      local res = raw(srv, request_bytes("GET", "/healthz", {"X-Big: " .. string.rep("a", 20000)}))
      assert_error(res, 431, "headers_too_large")
      res = raw(srv, request_bytes("GET", "/healthz?" .. string.rep("q", 20000), {}))
      assert_error(res, 431, "headers_too_large")
      local many = {}
      for i = 1, 2000 do many[i] = "X-H" .. i .. ": v" end
      assert_error(raw(srv, request_bytes("GET", "/healthz", many)), 431, "headers_too_large")
      assert_healthy(srv)
    end)

    it("refuses Content-Length together with Transfer-Encoding with 400, and runs nothing", function()
      local email = unique("smuggle") .. "@example.com"
      local body = register_body(email, unique("smug"), "long enough password")
      local res, err = raw(srv, request_bytes("POST", "/auth/register",
        {"Content-Type: application/json", "Content-Length: 4", "Transfer-Encoding: chunked"},
        ("%x\r\n%s\r\n0\r\n\r\n"):format(#body, body)))
      assert_error(res, 400, "bad_request")
      assert.equal("close", res.headers.connection, err)
      assert.equal(0, count_admins(url, email))
      assert_healthy(srv)
    end)

    it("refuses a negative Content-Length with 400", function()
      assert_error(raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Content-Length: -1"}, "{}")), 400, "bad_request")
      assert_error(raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Content-Length: +2"}, "{}")), 400, "bad_request")
      assert_healthy(srv)
    end)

    it("refuses a huge chunk size with 413", function()
      local res = raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Transfer-Encoding: chunked"}, "ffffffffffffffffff\r\n{}"))
      assert_error(res, 413, "payload_too_large")
      res = raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Transfer-Encoding: chunked"}, "7fffffffffffffff\r\n{}"))
      assert_error(res, 413, "payload_too_large")
      assert_healthy(srv)
    end)

    it("refuses the other framing tricks with 400 and closes the connection", function()
      local cases = {
        {"GET", {"Content-Length: 5"}, "hello"},                      -- a body evhttp would not read
        {"GET", {"Transfer-Encoding: chunked"}, "0\r\n\r\n"},
        {"POST", {"Transfer-Encoding: gzip, chunked"}, "0\r\n\r\n"},  -- only chunked is understood
        {"POST", {"Content-Length: 2", "Content-Length: 3"}, "{}"},
        {"POST", {"Content-Length : 2"}, "{}"},                         -- not a token: not Content-Length
        {"GET", {"Host: a.example", "Host: b.example"}},
      }
      for _, case in ipairs(cases) do
        local headers = {"Content-Type: application/json"}
        for _, h in ipairs(case[2]) do headers[#headers + 1] = h end
        local res = raw(srv, request_bytes(case[1], "/healthz", headers, case[3]))
        assert_error(res, 400, "bad_request")
        assert.equal("close", res.headers.connection)
      end
      assert_healthy(srv)
    end)

    it("refuses a NUL, a bare CR or a bare LF in a header value with 400", function()
      for _, value in ipairs({"a\0b", "a\rb", "a\nb: c", "a\r\n folded"}) do
        local res = raw(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: " .. value .. "\r\n\r\n")
        assert_error(res, 400, "bad_request")
        assert.equal("close", res.headers.connection)
      end
      assert_healthy(srv)
    end)

    it("keeps an idle keep-alive connection open for 2 s with the default KEEPALIVE_TIMEOUT_S (75)", function()
      local conn = assert(srv:connect())
      local res = conn:request("GET", "/healthz", {keepalive = true})
      assert.equal(200, res.status)
      assert.is_nil(res.headers.connection)
      socket.sleep(2)
      res = conn:request("GET", "/healthz", {keepalive = true})
      conn:close()
      assert.is_table(res, "the idle connection was closed")
      assert.equal(200, res.status)
      assert_healthy(srv)
    end)
  end)

  describe("JSON", function()
    local function post_raw(body)
      return srv:request("POST", "/auth/register", {headers = json_headers(), body = body})
    end

    it("refuses invalid UTF-8 with 400 invalid_json", function()
      local res = post_raw('{"email":"a\255b@example.com","name":"utf8x","password":"long enough password"}')
      assert_error(res, 400, "invalid_json")
      assert.equal("the body is not valid UTF-8", res.json.error.message)
      assert_error(post_raw('{"name":"\237\160\128"}'), 400, "invalid_json") -- a UTF-16 surrogate
      assert_healthy(srv)
    end)

    it("refuses truncated JSON with 400 invalid_json", function()
      assert_error(post_raw('{"email":"a@example.com","name":"x'), 400, "invalid_json")
      assert_error(post_raw('{"email":'), 400, "invalid_json")
      assert_healthy(srv)
    end)

    it("refuses 10,000-deep nesting with 400 (a depth limit, no stack overflow)", function()
      assert_error(post_raw(string.rep("[", 10000) .. string.rep("]", 10000)), 400, "invalid_json")
      assert_error(post_raw(string.rep('{"a":', 10000) .. "1" .. string.rep("}", 10000)), 400, "invalid_json")
      assert_healthy(srv)
    end)

    it("refuses duplicate keys with 400 invalid_json", function()
      local res = post_raw('{"email":"a@example.com","email":"admin@example.com","name":"dupkey",'
        .. '"password":"long enough password"}')
      assert_error(res, 400, "invalid_json")
      assert.equal("the body repeats a key inside one object", res.json.error.message)
      assert_error(post_raw('{"email":"a@example.com","\\u0065mail":"b@example.com"}'), 400, "invalid_json")
      assert_healthy(srv)
    end)

    it("refuses a NUL byte or a raw control character in the body with 400 (cjson would take them)", function()
      local res = post_raw('{"email":"a@example.com"}\0{"email":"admin@example.com"}')
      assert_error(res, 400, "invalid_json")
      res = post_raw('{"na\r\r":"}}g\t\t"}\0\0\0"') -- found by fuzz/json_fuzz.c: a 500 before
      assert_error(res, 400, "invalid_json")
      res = post_raw('{"email":"a@example.com","name":"tab\there","password":"long enough password"}')
      assert_error(res, 400, "invalid_json")
      assert.matches("control character", res.json.error.message)
      assert_healthy(srv)
    end)

    it("answers wrong types with 422 naming each field", function()
      local res = srv:request("POST", "/auth/register", {body = {email = 123, name = {}, password = true}})
      assert_error(res, 422, "validation_failed")
      assert.equal("must be a string", res.json.error.fields.email)
      assert.equal("must be a string", res.json.error.fields.name)
      assert.equal("must be a string", res.json.error.fields.password)
      assert_healthy(srv)
    end)
  end)

  describe("Auth", function()
    local admin, claims

    setup(function()
      admin = new_admin(srv, sink.dir, "auth")
      claims = claims_of(admin.access)
    end)

    local function me(token)
      return srv:request("GET", "/auth/me", {headers = bearer(token)})
    end

    local function with(changes)
      local c = {}
      for k, v in pairs(claims) do c[k] = v end
      for k, v in pairs(changes) do c[k] = v ~= false and v or nil end
      return c
    end

    local function assert_refused(token, code)
      local res = me(token)
      assert_error(res, 401, code or "unauthorized")
      assert.equal("Bearer", res.headers["www-authenticate"])
    end

    it("accepts a token forged with the right key and the real claims (the control)", function()
      local res = me(forge({alg = "HS256", typ = "JWT"}, with({}), "sha256"))
      assert.equal(200, res.status, res.body)
      assert.equal(admin.email, res.json.admin.email)
    end)

    it("refuses alg none with 401", function()
      assert_refused(forge({alg = "none", typ = "JWT"}, with({})))
      assert_refused(forge({alg = "none", typ = "JWT"}, with({})) .. "x")
      assert_healthy(srv)
    end)

    it("refuses HS512 signed with the right key with 401", function()
      assert_refused(forge({alg = "HS512", typ = "JWT"}, with({}), "sha512"))
      assert_healthy(srv)
    end)

    it("refuses an RS256 header with 401", function()
      assert_refused(forge({alg = "RS256", typ = "JWT"}, with({}), "sha256"))
      assert_healthy(srv)
    end)

    it("refuses an expired token with 401 token_expired", function()
      local now = os.time()
      assert_refused(forge({alg = "HS256"}, with({iat = now - 120, exp = now - 60}), "sha256"), "token_expired")
      assert_healthy(srv)
    end)

    it("refuses a token whose nbf is in the future with 401", function()
      assert_refused(forge({alg = "HS256"}, with({nbf = os.time() + 3600}), "sha256"))
      assert_healthy(srv)
    end)

    it("refuses a wrong iss with 401", function()
      assert_refused(forge({alg = "HS256"}, with({iss = "someone-else"}), "sha256"))
      assert_refused(forge({alg = "HS256"}, with({iss = false}), "sha256"))
      assert_healthy(srv)
    end)

    it("refuses a refresh token used as an access token with 401", function()
      assert_refused(admin.refresh)
      assert_refused(forge({alg = "HS256"}, with({typ = "refresh"}), "sha256"))
      assert_healthy(srv)
    end)

    it("refuses bad base64 with 401", function()
      local h, p, s = admin.access:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      assert_refused(h .. "." .. p .. "!." .. s)
      assert_refused(h .. "=." .. p .. "." .. s)
      assert_refused(h .. "." .. p .. "." .. s .. "==")
      assert_healthy(srv)
    end)

    it("refuses a token of two segments with 401", function()
      local h, p = admin.access:match("^([^.]+)%.([^.]+)%.")
      assert_refused(h .. "." .. p)
      assert_refused(h .. "." .. p .. ".")
      assert_healthy(srv)
    end)

    it("refuses long tokens: 8 KB with 401, 100 KB at the header limit with 431", function()
      assert_refused(admin.access .. string.rep("A", 8000))
      local res = me(string.rep("A", 100 * 1024))
      assert_error(res, 431, "headers_too_large")
      assert_healthy(srv)
    end)

    it("answers 429 from some point of 100 wrong passwords for one account", function()
      local first_limited
      for i = 1, 100 do
        local res = srv:request("POST", "/auth/login",
          {body = {email = admin.email, password = "wrong password " .. i}})
        if res.status == 429 then
          first_limited = first_limited or i
          assert_error(res, 429, "rate_limited")
          assert.matches("^%d+$", res.headers["retry-after"])
        else
          assert.is_nil(first_limited, "a 401 after the first 429")
          assert_error(res, 401, "invalid_credentials")
        end
      end
      assert.equal(41, first_limited) -- LOGIN_FAILURE_LIMIT=40
      assert_healthy(srv)
    end)

    it("answers an unknown email and a wrong password alike, in similar time", function()
      local victim = new_admin(srv, sink.dir, "timing")
      local wrong_t, unknown_t = {}, {}
      local wrong_body, unknown_body -- decoded: key order may differ between workers
      for i = 1, 30 do
        local t0 = socket.gettime()
        local res = srv:request("POST", "/auth/login", {body = {email = victim.email, password = "not it " .. i}})
        wrong_t[i] = socket.gettime() - t0
        wrong_body = wrong_body or res.json
        assert.equal(401, res.status)
        assert.same(wrong_body, res.json)
        t0 = socket.gettime()
        res = srv:request("POST", "/auth/login",
          {body = {email = unique("ghost") .. "@example.com", password = "not it " .. i}})
        unknown_t[i] = socket.gettime() - t0
        unknown_body = unknown_body or res.json
        assert.equal(401, res.status)
        assert.same(unknown_body, res.json)
      end
      assert.same(wrong_body, unknown_body)
      local mw, mu = median(wrong_t), median(unknown_t)
      local ratio = mu / mw
      print(("\n  login timing over 30 tries: wrong password median %.1f ms, unknown email median %.1f ms, ratio %.3f")
        :format(mw * 1000, mu * 1000, ratio))
      assert.is_true(ratio > 0.5 and ratio < 2, ("ratio %.3f"):format(ratio))
      assert_healthy(srv)
    end)

    it("gives exactly one 201 and one 409 to two concurrent registrations of one email", function()
      local email = unique("race") .. "@example.com"
      local conns, replies = {}, {}
      for i = 1, 2 do
        local body = register_body(email, unique("race"), secret("race password " .. unique("p")))
        conns[i] = assert(srv:connect())
        conns[i]:send_raw(request_bytes("POST", "/auth/register",
          {"Content-Type: application/json", "Content-Length: " .. #body, "Connection: close"}, body))
      end
      for i = 1, 2 do
        replies[i] = assert(conns[i]:read_response())
        conns[i]:close()
      end
      table.sort(replies, function(a, b) return a.status < b.status end)
      assert.equal(201, replies[1].status, replies[1].body)
      assert_error(replies[2], 409, "conflict")
      assert.is_string(replies[2].json.error.fields.email)
      assert.equal(1, count_admins(url, email))
      assert_healthy(srv)
    end)
  end)

  describe("SQL", function()
    local admin
    local PAYLOADS = {"' OR 1=1--", "%00", "\"quoted\"", "back\\slash", "'; DROP TABLE admins;--",
                      "a'b\"c\\d%00", "\\x00\\'"}

    setup(function()
      admin = new_admin(srv, sink.dir, "sql")
    end)

    it("stores quotes, backslashes, %00 and ' OR 1=1-- literally or answers 422, never 500", function()
      local h = bearer(admin.access)
      local function allowed(res, ...)
        assert.is_table(res)
        for _, s in ipairs({...}) do if res.status == s then return end end
        error(("status %d: %s"):format(res.status, res.body))
      end
      for i, p in ipairs(PAYLOADS) do
        -- user name: any text, stored as sent
        local res = srv:request("POST", "/users",
          {headers = h, body = {email = unique("sqlu") .. "@example.com", name = p}})
        assert.equal(201, res.status, res.body)
        local id = res.json.user.id
        res = srv:request("GET", "/users/" .. id, {headers = h})
        assert.equal(p, res.json.user.name)
        res = srv:request("PATCH", "/users/" .. id, {headers = h, body = {name = p .. p}})
        assert.equal(200, res.status, res.body)
        assert.equal(p .. p, res.json.user.name)
        -- every other string field
        allowed(srv:request("POST", "/users", {headers = h, body = {email = p}}), 422)
        local local_part = unique("x" .. i) .. p:gsub("[^%w'%%=-]", "")
        allowed(srv:request("POST", "/users", {headers = h, body = {email = local_part .. "@example.com"}}), 201, 422)
        allowed(srv:request("GET", "/users?q=" .. urlencode(p), {headers = h}), 200)
        allowed(srv:request("GET", "/users?cursor=" .. urlencode(p), {headers = h}), 400)
        allowed(srv:request("GET", "/user?id=" .. urlencode(p), {headers = h}), 400)
        allowed(srv:request("GET", "/users/" .. urlencode(p), {headers = h}), 400, 404)
        allowed(srv:request("POST", "/auth/login", {body = {email = p, password = p}}), 422)
        allowed(srv:request("POST", "/auth/login", {body = {email = admin.email .. p, password = p}}), 401, 422)
        allowed(srv:request("POST", "/auth/register", {body = {email = p, name = p, password = p .. p .. p}}), 422)
        allowed(srv:request("POST", "/auth/password/forgot", {body = {email = p}}), 422)
        allowed(srv:request("POST", "/auth/confirm/resend", {body = {email = p}}), 422)
        allowed(srv:request("POST", "/auth/password/reset", {body = {token = p, password = "long enough " .. p}}), 400)
        allowed(srv:request("GET", "/auth/confirm?token=" .. urlencode(p)), 400)
        allowed(srv:request("PUT", "/auth/me", {headers = h, body = {name = p}}), 422)
      end
      local res = srv:request("GET", "/users?q=" .. urlencode("' OR 1=1--"), {headers = h})
      for _, u in ipairs(res.json.users) do assert.matches("' OR 1=1--", u.name, 1, true) end
      assert_healthy(srv)
    end)

    it("keeps an email and a password with quotes, backslashes and %00 exactly", function()
      local email = unique("o'hara'or'1'='1--%00") .. "@example.com"
      local password = secret("pw' OR 1=1--\\\"%00" .. unique("x"))
      local res = srv:request("POST", "/auth/register",
        {body = {email = email, name = unique("quote"), password = password}})
      assert.equal(201, res.status, res.body)
      assert.equal(email, res.json.admin.email)
      assert.equal(1, count_admins(url, email))
      -- the password is compared as stored: a prefix is not enough
      res = srv:request("POST", "/auth/login", {body = {email = email, password = "pw' OR 1=1--"}})
      assert_error(res, 401, "invalid_credentials")
      res = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
      assert_error(res, 403, "account_not_confirmed") -- right password, not yet confirmed
      assert_healthy(srv)
    end)

    it("refuses a 10 MB field with 413", function()
      local res = srv:request("POST", "/users", {headers = bearer(admin.access),
        body = {email = unique("huge") .. "@example.com", name = string.rep("n", 10 * 1024 * 1024)}})
      assert_error(res, 413, "payload_too_large")
      assert_healthy(srv)
    end)
  end)

  describe("Email", function()
    local function confirm_link(email)
      local raw_mail = assert(mailbox.message_to(sink.dir, email, 20), "no mail for " .. email)
      local link, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
      return link:sub(#srv.env.PUBLIC_URL + 1), secret(token), raw_mail
    end

    -- Registers email; through conn with opts.host and opts.headers when given.
    local function register(email, opts, conn)
      local body = {email = email, name = unique("mail"), password = secret("mail password " .. unique("p"))}
      if conn then
        return conn:request("POST", "/auth/register", {body = body, host = opts.host, headers = opts.headers})
      end
      return srv:request("POST", "/auth/register", {body = body})
    end

    local function expire_tokens(where)
      sql(url, "UPDATE one_time_tokens SET expires_at = now() - interval '1 second' WHERE " .. where)
    end

    local function reset_password(token, password)
      return srv:request("POST", "/auth/password/reset", {body = {token = token, password = password}})
    end

    local function reset_token(email)
      assert.equal(202, srv:request("POST", "/auth/password/forgot", {body = {email = email}}).status)
      local raw_mail = assert(util.wait_for(20, function()
        local msg = mailbox.message_to(sink.dir, email, 0.1)
        return msg and msg:find("/auth/password/reset", 1, true) and msg
      end), "no reset mail")
      local _, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
      return secret(token)
    end

    it("refuses a confirmation link used twice, expired or altered with 400 invalid_token", function()
      -- used twice
      local email = unique("conf") .. "@example.com"
      assert.equal(201, register(email).status)
      local path, token = confirm_link(email)
      assert.equal(200, srv:request("GET", path).status)
      assert_error(srv:request("GET", path), 400, "invalid_token")
      -- altered: one character changed, cut short, extended
      local email2 = unique("alt") .. "@example.com"
      assert.equal(201, register(email2).status)
      local path2, token2 = confirm_link(email2)
      local flipped = token2:sub(1, -2) .. (token2:sub(-1) == "A" and "B" or "A")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. flipped), 400, "invalid_token")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. token2:sub(1, -2)), 400, "invalid_token")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. token2 .. "A"), 400, "invalid_token")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. token), 400, "invalid_token")
      -- expired (CONFIRM_TOKEN_TTL_S is at least 60: the clock is moved in the database)
      expire_tokens(("email = '%s'"):format(email2))
      assert_error(srv:request("GET", path2), 400, "invalid_token")
      assert_healthy(srv)
    end)

    it("refuses a reset token used twice, expired or altered with 400 invalid_token", function()
      local admin = new_admin(srv, sink.dir, "reset")
      local token = reset_token(admin.email)
      local altered = token:sub(1, -2) .. (token:sub(-1) == "A" and "B" or "A")
      local new_password = secret("a fresh passphrase " .. unique("p"))
      assert_error(reset_password(altered, new_password), 400, "invalid_token")
      assert.equal(204, reset_password(token, new_password).status)
      assert_error(reset_password(token, new_password .. "!"), 400, "invalid_token")
      local token2 = reset_token(admin.email)
      expire_tokens(("kind = 'reset' AND email = '%s'"):format(admin.email))
      assert_error(reset_password(token2, new_password .. "?"), 400, "invalid_token")
      assert_healthy(srv)
    end)

    it("refuses CR/LF in an email address or a name with 422 (no header injection)", function()
      local res = srv:request("POST", "/auth/register", {body = {email = "a@example.com\r\nBcc: victim@example.com",
        name = unique("crlf"), password = "long enough password"}})
      assert_error(res, 422, "validation_failed")
      assert.is_string(res.json.error.fields.email)
      res = srv:request("POST", "/auth/register", {body = {email = unique("crlf") .. "@example.com",
        name = "ab\r\nBcc: victim@example.com", password = "long enough password"}})
      assert_error(res, 422, "validation_failed")
      assert.is_string(res.json.error.fields.name)
      for _, route in ipairs({"/auth/password/forgot", "/auth/confirm/resend"}) do
        res = srv:request("POST", route, {body = {email = "a@example.com\nBcc: victim@example.com"}})
        assert_error(res, 422, "validation_failed")
      end
      local admin = new_admin(srv, sink.dir, "crlf")
      res = srv:request("POST", "/users", {headers = bearer(admin.access),
        body = {email = unique("u") .. "@example.com", name = "Eve\r\nBcc: victim@example.com"}})
      assert_error(res, 422, "validation_failed")
      assert.is_string(res.json.error.fields.name)
      res = srv:request("PUT", "/auth/me", {headers = bearer(admin.access),
        body = {email = "new@example.com\r\nBcc: victim@example.com", current_password = admin.password}})
      assert_error(res, 422, "validation_failed")
      assert.is_nil(mailbox.message_to(sink.dir, "victim@example.com", 0.5))
      assert_healthy(srv)
    end)

    it("builds links from PUBLIC_URL only, whatever Host an attacker sends", function()
      local email = unique("host") .. "@example.com"
      local conn = assert(srv:connect())
      local res = register(email, {host = "evil.example", headers = {["X-Forwarded-Host"] = "evil.example",
        ["X-Forwarded-Proto"] = "https", Forwarded = "host=evil.example"}}, conn)
      conn:close()
      assert.equal(201, res.status, res.body)
      local path, _, raw_mail = confirm_link(email)
      assert.truthy(path)
      assert.not_matches("evil%.example", raw_mail)
      conn = assert(srv:connect())
      res = conn:request("POST", "/auth/password/forgot", {host = "evil.example", body = {email = email},
        headers = {["X-Forwarded-Host"] = "evil.example"}})
      conn:close()
      assert.equal(202, res.status)
      local reset = assert(util.wait_for(20, function()
        local msg = mailbox.message_to(sink.dir, email, 0.1)
        return msg and msg:find("/auth/password/reset", 1, true) and msg
      end))
      local link = mailbox.link(reset, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
      assert.is_string(link)
      secret(link:match("token=([^&]+)"))
      assert.not_matches("evil%.example", reset)
      assert_healthy(srv)
    end)
  end)
end)

-- ---- connection limits ---------------------------------------------------------------

describe("hardening: connection limits", function()
  local srv

  setup(function()
    srv = start({workers = 1, env = {REQUEST_READ_TIMEOUT_S = "3", MAX_CONNECTIONS = "8"}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("cuts a slowloris (one byte a second) off at the request deadline while others are served", function()
    local slow_head = assert(srv:connect())
    local slow_body = assert(srv:connect())
    local t0 = socket.gettime()
    local head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " .. string.rep("a", 30)
    slow_body:send_raw("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: 60\r\n\r\n{")
    local closed_at = {}
    -- what each connection received so far: the 408 may arrive in one read
    -- (as a partial, the socket still open) and the close in a later one
    local received = {head = "", body = ""}
    local served, i = 0, 0
    while socket.gettime() - t0 < 6 and not (closed_at.head and closed_at.body) do
      i = i + 1
      for name, conn in pairs({head = slow_head, body = slow_body}) do
        if not closed_at[name] then
          local ok = conn:send_raw(name == "head" and head:sub(i, i) or " ")
          conn.sock:settimeout(0)
          local data, err, partial = conn.sock:receive("*a")
          received[name] = received[name] .. (data or partial or "")
          if not ok or (err and err ~= "timeout") or data then
            closed_at[name] = {t = socket.gettime() - t0, reply = received[name]}
          end
        end
      end
      -- others are served meanwhile
      local t1 = socket.gettime()
      local res = srv:request("GET", "/healthz", {timeout = 2})
      assert.equal(200, res and res.status)
      assert.is_true(socket.gettime() - t1 < 0.5)
      served = served + 1
      socket.sleep(math.max(0, t0 + i - socket.gettime()))
    end
    slow_head:close()
    slow_body:close()
    for _, name in ipairs({"head", "body"}) do
      local c = assert(closed_at[name], "the slow " .. name .. " was never cut off")
      assert.is_true(c.t >= 2.5 and c.t < 5, ("cut off after %.2f s"):format(c.t))
      assert.matches("^HTTP/1.1 408", c.reply)
      assert.matches('"code":"request_timeout"', c.reply)
    end
    assert.is_true(served >= 3)
    local logged = 0
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "request read deadline passed" and line.status == 408 then logged = logged + 1 end
    end
    assert.is_true(logged >= 2)
    assert_healthy(srv)
  end)

  it("refuses a connection flood past MAX_CONNECTIONS while established clients are still served", function()
    local regular = assert(srv:connect())
    assert.equal(200, regular:request("GET", "/healthz", {keepalive = true}).status)
    local flood = {}
    for i = 1, 24 do flood[i] = assert(client.connect(srv.port, 5)) end
    socket.sleep(0.3)
    -- the established keep-alive client is served at once
    local t0 = socket.gettime()
    local res = regular:request("GET", "/healthz", {keepalive = true})
    assert.equal(200, res.status)
    assert.is_true(socket.gettime() - t0 < 0.5)
    -- a newcomer is not admitted while the cap is reached
    local newcomer = assert(client.connect(srv.port, 1))
    newcomer:send_raw(request_bytes("GET", "/healthz", {"Connection: close"}))
    newcomer.sock:settimeout(1)
    local early = newcomer.sock:receive("*l")
    assert.is_nil(early, "a connection past the cap was served")
    local limited = false
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "connection limit reached; not accepting" then
        limited = true
        assert.equal(8, line.max_connections)
        assert.is_true(line.connections <= 8)
      end
    end
    assert.is_true(limited)
    -- the flood goes away: everyone is served again
    for _, c in ipairs(flood) do c:close() end
    newcomer.sock:settimeout(5)
    local line = newcomer.sock:receive("*l")
    newcomer:close()
    assert.equal("HTTP/1.1 200 OK", line)
    assert.equal(200, regular:request("GET", "/healthz", {keepalive = true}).status)
    regular:close()
    assert_healthy(srv)
  end)
end)

describe("hardening: KEEPALIVE_TIMEOUT_S", function()
  it("closes an idle keep-alive connection after KEEPALIVE_TIMEOUT_S when set small", function()
    local srv = start({workers = 1, env = {KEEPALIVE_TIMEOUT_S = "1"}})
    local conn = assert(srv:connect())
    assert.equal(200, conn:request("GET", "/healthz", {keepalive = true}).status)
    local t0 = socket.gettime()
    local closed = closed_by_server(conn, 5)
    local after = socket.gettime() - t0
    conn:close()
    assert.is_true(closed)
    assert.is_true(after >= 0.8 and after < 3, ("closed after %.2f s"):format(after))
    assert_healthy(srv)
    srv:stop()
  end)
end)

-- ---- mail faults -----------------------------------------------------------------------

describe("hardening: mail faults", function()
  -- True once the server logged a failed delivery attempt (within 10 s).
  local function retry_logged(srv)
    return util.wait_for(10, function() return srv:log_line("mail will be retried") ~= nil end)
  end

  it("registers with 201 while SMTP is down, and the mail arrives once SMTP returns", function()
    local port = util.free_port()
    local dir = util.tmpdir("mail")
    local srv = start({workers = 1, env = {MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off"}})
    local email = unique("down") .. "@example.com"
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = unique("down"),
      password = secret("smtp down password " .. unique("p"))}})
    assert.equal(201, res.status, res.body)
    assert.truthy(retry_logged(srv), "no failed attempt was logged")
    local sink = mailbox.start_sink(port, dir)
    local raw_mail = mailbox.message_to(dir, email, 30)
    sink.stop()
    assert.is_string(raw_mail, "the mail never arrived")
    local _, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    secret(token)
    assert_healthy(srv)
    srv:stop()
  end)

  it("registers with 201 while the outbox cannot be written, and the mail is written once it can", function()
    local blocker = os.tmpname() -- a regular file: mkdir below it fails, even as root
    local outbox = blocker .. "/outbox"
    local srv = start({workers = 1, env = {OUTBOX_DIR = outbox, MAIL_URL = ""}})
    local email = unique("full") .. "@example.com"
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = unique("full"),
      password = secret("disk full password " .. unique("p"))}})
    assert.equal(201, res.status, res.body)
    assert.truthy(retry_logged(srv), "no failed attempt was logged")
    os.remove(blocker) -- the disk is back
    local raw_mail = mailbox.message_to(outbox, email, 30)
    assert.is_string(raw_mail, "the mail was lost")
    local _, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    secret(token)
    assert_healthy(srv)
    srv:stop()
    os.execute("rm -rf " .. sh(blocker))
  end)

  it("keeps the API answering when Firehose is unreachable", function()
    -- nothing listens on port 9 of loopback: every batch fails to connect
    local srv = start({env = {
      FIREHOSE_STREAM = "moonkeep-logs", AWS_REGION = "eu-west-1",
      FIREHOSE_ENDPOINT = "http://127.0.0.1:9", FIREHOSE_FLUSH_MS = "50",
      AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    }})
    local email = unique("fh") .. "@example.com"
    local res = srv:request("POST", "/auth/register",
      {body = {email = email, name = unique("fh"), password = "a long enough passphrase"}})
    assert.equal(201, res.status, res.body)
    for _ = 1, 200 do assert.equal(200, srv:request("GET", "/healthz").status) end
    assert.truthy(util.wait_for(10, function() return srv:log_text():find("firehose", 1, true) end))
    assert_healthy(srv)
    srv:stop()
  end)
end)

-- ---- process and database faults ----------------------------------------------------------

describe("hardening: faults", function()
  it("answers 503 while PostgreSQL is stopped under load, recovers, and writes no half rows", function()
    local cluster_dir = os.getenv("PG_CLUSTER_DIR")
    local own, url = false, os.getenv("DATABASE_URL")
    if not cluster_dir or cluster_dir == "" then
      cluster_dir, own = os.tmpname(), true
      os.remove(cluster_dir)
      local out, code = run("tools/pg-cluster.sh start " .. sh(cluster_dir))
      assert(code == 0, out)
      url = out:match("(postgresql://%S+)")
    end
    local srv = start({workers = 2, env = {DATABASE_URL = url, DB_QUEUE_TIMEOUT_MS = "1000"}})
    local admin = new_admin(srv, srv.outbox, "pg")
    local tag = unique("pgload")
    local loads = {}
    for k = 1, 3 do
      loads[k] = spawn_load(7, function(i)
        local email = ("%s-%d-%d@example.com"):format(tag, k, i)
        local res, err = client.request(srv.port, "POST", "/users",
          {headers = json_headers(bearer(admin.access)), body = cjson.encode({email = email}), timeout = 15})
        return ("%s %s %.3f"):format(res and res.status or ("error:" .. tostring(err)), email, socket.gettime())
      end)
    end
    local ok, err = pcall(function()
      socket.sleep(1.5)
      local out, code = run("tools/pg-cluster.sh stop " .. sh(cluster_dir))
      assert(code == 0, out)
      socket.sleep(2)
    end)
    local out, code = run("tools/pg-cluster.sh start " .. sh(cluster_dir))
    assert(code == 0, "PostgreSQL did not come back: " .. out)
    assert(ok, err)
    local t_back = socket.gettime()
    local created, statuses, after = {}, {}, 0
    for _, load in ipairs(loads) do
      for _, line in ipairs(load_lines(load)) do
        local status, email, t = line:match("^(%S+) (%S+) (%S+)$")
        statuses[status] = (statuses[status] or 0) + 1
        if status == "201" then
          created[#created + 1] = email
          if tonumber(t) > t_back then after = after + 1 end
        end
      end
    end
    print(("\n  PostgreSQL restart under load: %s"):format(cjson.encode(statuses)))
    for status in pairs(statuses) do
      assert.is_true(status == "201" or status == "503", "unexpected answer " .. status)
    end
    assert.is_true((statuses["503"] or 0) > 0, "no 503 while the database was down")
    assert.is_true(after > 0, "no recovery after the database came back")
    local rows = tonumber(sql(url, ("SELECT count(*) FROM users WHERE email LIKE '%s-%%'"):format(tag)))
    assert.equal(#created, rows, "rows written differ from the 201s the clients saw")
    assert_healthy(srv)
    srv:stop()
    if own then run("tools/pg-cluster.sh stop " .. sh(cluster_dir) .. "; rm -rf " .. sh(cluster_dir)) end
  end)

  it("replaces a worker killed with SIGSEGV or SIGKILL under load, the other unaffected", function()
    -- the sanitizer would report the SIGSEGV as a crash of its own
    local srv = start({workers = 2, env = {ASAN_OPTIONS = with_asan("handle_segv=0")}})
    local before = srv:worker_pids()
    assert.equal(2, #before)
    local loads = {}
    for k = 1, 3 do
      loads[k] = spawn_load(4, function()
        local res, err = client.request(srv.port, "GET", "/healthz", {timeout = 5})
        return ("%s %.3f"):format(res and res.status or "error:" .. tostring(err), socket.gettime())
      end)
    end
    socket.sleep(1)
    local t_segv = socket.gettime()
    server.posix.kill(before[1], signal.SIGSEGV)
    socket.sleep(1.2)
    local t_kill = socket.gettime()
    server.posix.kill(before[2], signal.SIGKILL)
    local failures, after_segv, after_kill = 0, 0, 0
    for _, load in ipairs(loads) do
      for _, line in ipairs(load_lines(load)) do
        local status, t = line:match("^(%S+) (%S+)$")
        t = tonumber(t)
        if status ~= "200" then failures = failures + 1
        elseif t > t_kill + 0.5 then after_kill = after_kill + 1
        elseif t > t_segv + 0.5 then after_segv = after_segv + 1 end
      end
    end
    print(("\n  worker kills under load: %d failed requests, %d served after SIGSEGV, %d after SIGKILL")
      :format(failures, after_segv, after_kill))
    assert.is_true(failures <= 6, failures .. " requests failed")
    assert.is_true(after_segv > 0 and after_kill > 0)
    local replaced = util.wait_for(15, function()
      local now = srv:worker_pids()
      return #now == 2 and now[1] ~= before[1] and now[2] ~= before[1]
        and now[1] ~= before[2] and now[2] ~= before[2]
    end)
    assert.truthy(replaced, "the workers were not replaced")
    local signals = {}
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "worker died; restarting" then signals[line.signal] = true end
    end
    assert.is_true(signals[11] and signals[9])
    assert_healthy(srv)
    srv:stop()
  end)

  it("answers all 50 logins in flight at SIGTERM and exits 0 within the grace period", function()
    -- every login attempt is counted before its work (API.md): 50 at once
    -- for one admin need a failed-login limit of 50 or more
    local srv = start({workers = 2, env = {SHUTDOWN_GRACE_S = "15", LOGIN_FAILURE_LIMIT = "100"}})
    local admin = new_admin(srv, srv.outbox, "term")
    local body = cjson.encode({email = admin.email, password = admin.password})
    local conns = {}
    for i = 1, 50 do
      conns[i] = assert(srv:connect())
      conns[i]:send_raw(request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Content-Length: " .. #body, "Connection: close"}, body))
    end
    socket.sleep(0.05)
    local t0 = socket.gettime()
    srv:kill(signal.SIGTERM)
    local ok = 0
    for i = 1, 50 do
      local res = conns[i]:read_response()
      conns[i]:close()
      if res and res.status == 200 then
        ok = ok + 1
        secret(res.json.access_token)
        secret(res.json.refresh_token)
      end
    end
    local how, code = srv:wait_exit(20)
    local took = socket.gettime() - t0
    assert.equal(50, ok)
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.is_true(took < 15, ("took %.1f s"):format(took))
    srv:stop()
  end)
end)

-- ---- leaks --------------------------------------------------------------------------------

describe("hardening: leaks", function()
  it("logs no password, token or key of the suite in any server's log", function()
    assert.is_true(#started >= 5)
    assert.is_true(#secrets >= 20)
    for _, srv in ipairs(started) do
      local text = srv:log_text()
      assert.is_true(#text > 0)
      for _, s in ipairs(secrets) do
        local at = text:find(s, 1, true)
        assert.is_nil(at, ("a secret is in the log of the server on port %d: ...%s..."):format(
          srv.port, at and text:sub(math.max(1, at - 200), at + 40) or ""))
      end
    end
  end)
end)
