-- spec/support/hardening.lua — what the hardening specs (spec/e2e/hardening/)
-- share: servers whose logs are searched for the secrets a file used, raw
-- requests, forged tokens, load from a child process. busted insulates each
-- spec file, so every file that requires this gets its own `started` and
-- `secrets`, and ends with hardening.assert_no_secrets_logged().
local assert = require "luassert"
local server = require "support.server"
local client = require "support.http_client"
local mailbox = require "support.mailbox"
local util = require "support.util"
local socket = require "socket"
local cjson = require "cjson.safe"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"

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

local function sql(url, query) return util.sql(query, url) end

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

-- The docs/api.md error shape, with this code.
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

-- Every server this file started: its whole log holds none of the
-- passwords, tokens and keys the file used (secret(...)).
local function assert_no_secrets_logged()
  assert.is_true(#started >= 1)
  for _, srv in ipairs(started) do
    local text = srv:log_text()
    assert.is_true(#text > 0)
    for _, s in ipairs(secrets) do
      local at = text:find(s, 1, true)
      assert.is_nil(at, ("a secret is in the log of the server on port %d: ...%s..."):format(
        srv.port, at and text:sub(math.max(1, at - 200), at + 40) or ""))
    end
  end
end

-- The server most cases share: two workers, mail to a local SMTP sink, a
-- login-failure limit above what the cases send. Returns {srv, sink, url,
-- stop}; call it in setup and stop in teardown.
local function main_server()
  local m = {}
  m.url = assert(os.getenv("DATABASE_URL"), "DATABASE_URL is not set (tools/test.sh sets it)")
  m.sink = mailbox.start_sink(util.free_port(), util.tmpdir("mail"))
  m.srv = start({workers = 2, env = {
    MAIL_URL = ("smtp://127.0.0.1:%d"):format(m.sink.port), MAIL_TLS = "off",
    LOGIN_FAILURE_LIMIT = "40",
  }})
  function m.stop()
    if m.srv then m.srv:stop() end
    if m.sink then m.sink.stop() end
  end
  return m
end

return {
  PYTHON = PYTHON,
  JWT_SECRET = JWT_SECRET,
  secret = secret,
  start = start,
  unique = unique,
  sh = sh,
  run = run,
  sql = sql,
  urlencode = urlencode,
  bearer = bearer,
  json_headers = json_headers,
  assert_healthy = assert_healthy,
  assert_error = assert_error,
  raw = raw,
  closed_by_server = closed_by_server,
  request_bytes = request_bytes,
  register_body = register_body,
  count_admins = count_admins,
  new_admin = new_admin,
  forge = forge,
  claims_of = claims_of,
  spawn_load = spawn_load,
  load_lines = load_lines,
  with_asan = with_asan,
  median = median,
  started = started,
  secrets = secrets,
  assert_no_secrets_logged = assert_no_secrets_logged,
  main_server = main_server,
}
