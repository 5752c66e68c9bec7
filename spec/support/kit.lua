-- spec/support/kit.lua — a testing kit for script authors: run app.handle
-- in-process, with fakes for the host bindings, in a few lines.
--
--   local kit = require "support.kit"
--
--   describe("GET /users", function()
--     local k
--     before_each(function() k = kit.new() end)   -- fresh fakes, fresh scripts
--
--     it("returns 401 without a token", function()
--       local res = k:get("/users")
--       assert.status(401, res)
--       assert.equal("unauthorized", res.json.error.code)
--     end)
--
--     it("lists the users an admin created", function()
--       local s = k:signed_in()                     -- a confirmed admin, logged in
--       k:post("/users", {json = {email = "a@example.com"}, token = s.access})
--       local res = k:get("/users?limit=10", {token = s.access})
--       assert.status(200, res)
--       assert.equal("a@example.com", res.json.users[1].email)
--     end)
--   end)
--
-- kit.new(opts) loads the scripts anew (as a new script generation would)
-- with these bindings in package.loaded:
--   host.db        spec/support/fake_db.lua (k.db: state, calls, fail, not_ready)
--   host.jwt       fakes.jwt on the kit's clock (k.jwt)
--   host.password  fakes.password (k.password: counters, stored(pw, old))
--   host.mail      fakes.mail (k.mail.sent, k.mail.fail(err); k:mails() runs the outbox job first)
--   host.log       fakes.log (k.log.lines, k.log.text())
--   host.crypto    fakes.crypto, or the real one with opts.real = {crypto = true}
--   host.json      the real one (build/lua/host.so): responses are encoded
--                  with the host's encoder, as on the wire
--   host.info      fakes.info
--   host.metrics   fakes.metrics (k.metrics.routes: the route label of each request)
-- opts.env: environment variables for lib/config.lua (defaults below).
-- opts.real: {crypto = true, jwt = true, password = true}: the real binding
-- from build/lua/host.so instead of the fake (the real jwt is opened with the
-- kit's JWT_SECRET and the real password with cheap argon2 parameters; the
-- real jwt runs on the real clock, so k:advance does not expire its tokens).
--
-- Responses: {status, headers, body (the wire string), json (decoded, or
-- nil), raw (what the script returned), error (traceback of a script error,
-- answered 500 as the host does)}; res:header(name) is case-insensitive.
local cjson = require "cjson.safe"
local FakeDB = require "support.fake_db"
local fakes = require "support.fakes"

local pairs, ipairs, type, tostring, setmetatable, error, xpcall =
  pairs, ipairs, type, tostring, setmetatable, error, xpcall
local lower, match, gsub, gmatch, char, format = string.lower, string.match, string.gsub, string.gmatch,
  string.char, string.format
local tonumber, traceback = tonumber, debug.traceback

local kit = {}

kit.DEFAULT_ENV = {
  PUBLIC_URL = "https://moonkeep.test",
  JWT_SECRET = "spec-jwt-secret-spec-jwt-secret-0123456789",
}

kit.START_TIME = 1796132700 -- 2026-12-01T13:45:00Z

-- Modules that make up a script generation (reloaded by every kit.new).
local function is_script_module(name)
  return name == "app" or name == "openapi" or match(name, "^lib%.") or match(name, "^routes%.")
      or match(name, "^tools%.") or match(name, "^host%.")
end

-- The environment the real bindings read when they are opened: JWT_SECRET
-- for host.jwt (when the process has none), and cheap argon2 parameters for
-- host.password (restored once the module is open, since they are read then).
local ffi = require "ffi"
ffi.cdef [[
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
]]

local function with_env(vars, fn)
  local saved = {}
  for name, value in pairs(vars) do
    saved[name] = os.getenv(name) or false
    ffi.C.setenv(name, value, 1)
  end
  local ok, result = pcall(fn)
  for name, value in pairs(saved) do
    if value then ffi.C.setenv(name, value, 1) else ffi.C.unsetenv(name) end
  end
  if not ok then error(result, 0) end
  return result
end

local REAL_ENV = {
  ["host.jwt"] = {JWT_SECRET = kit.DEFAULT_ENV.JWT_SECRET},
  ["host.password"] = {MOONKEEP_INSECURE_FAST_HASH = "1", ARGON2_OPSLIMIT = "1", ARGON2_MEMLIMIT_KIB = "8"},
}

local real_cache = {}
local function real(name)
  if real_cache[name] == nil then
    package.loaded[name] = nil
    local ok, mod = pcall(with_env, REAL_ENV[name] or {}, function() return require(name) end)
    if not ok then
      error(format("kit: the real %s is not available (build build/lua/host.so first): %s", name, tostring(mod)), 3)
    end
    real_cache[name] = mod
  end
  return real_cache[name]
end

-- ---- responses -----------------------------------------------------------------

local Response = {}
Response.__index = Response

function Response:header(name)
  name = lower(name)
  for k, v in pairs(self.headers) do
    if lower(k) == name then return v end
  end
end

local function describe_response(res)
  local text = format("status %s\nheaders: %s\nbody: %s", tostring(res.status),
                      cjson.encode(res.headers) or "?", tostring(res.body))
  if res.error then text = text .. "\nscript error: " .. res.error end
  return text
end
Response.__tostring = describe_response

-- assert.status(201, res): on failure, shows the whole response (and the
-- script error, if any).
do
  local say = require "say"
  local luassert = require "luassert"
  say:set("assertion.status.positive", "Expected response status %s, got:\n%s")
  say:set("assertion.status.negative", "Expected a response status other than %s, got:\n%s")
  local function has_status(_, arguments)
    local expected, res = arguments[1], arguments[2]
    local ok = type(res) == "table" and res.status == expected
    arguments[2] = type(res) == "table" and describe_response(res) or tostring(res)
    arguments.nofmt = {false, true}
    return ok
  end
  luassert:register("assertion", "status", has_status, "assertion.status.positive", "assertion.status.negative")
end

-- ---- the kit ---------------------------------------------------------------------

local Kit = {}
Kit.__index = Kit

function kit.new(opts)
  opts = opts or {}
  local k = setmetatable({clock = {now = kit.START_TIME}, requests = 0}, Kit)
  local env = {}
  for name, v in pairs(kit.DEFAULT_ENV) do env[name] = v end
  for name, v in pairs(opts.env or {}) do env[name] = v end
  k.env = env
  local use_real = opts.real or {}

  for name in pairs(package.loaded) do
    if is_script_module(name) then package.loaded[name] = nil end
  end
  local json = real("host.json")
  k.db = FakeDB.new(k.clock)
  k.jwt = use_real.jwt and real("host.jwt") or fakes.jwt(k.clock)
  k.password = use_real.password and real("host.password") or fakes.password()
  k.crypto = use_real.crypto and real("host.crypto") or fakes.crypto()
  k.mail = fakes.mail()
  k.log = fakes.log()
  k.info = fakes.info()
  k.metrics = fakes.metrics()
  package.loaded["host.json"] = json
  package.loaded["host.db"] = k.db.module
  package.loaded["host.jwt"] = k.jwt
  package.loaded["host.password"] = k.password
  package.loaded["host.crypto"] = k.crypto
  package.loaded["host.mail"] = k.mail
  package.loaded["host.log"] = k.log
  package.loaded["host.info"] = k.info
  package.loaded["host.metrics"] = k.metrics

  -- lib/config.lua from the kit's environment instead of the process's
  local config = require "lib.config"
  local settings = config.load(function(name) return env[name] end)
  for key in pairs(config) do if key ~= "load" then config[key] = nil end end
  for key, v in pairs(settings) do config[key] = v end
  k.config = config

  k.app = require "app"
  k.store = require "lib.store"
  k.db:bind(k.store.SQL)
  k.json = json
  return k
end

-- Moves the clock (token expiry, rate windows, link lifetimes).
function Kit:advance(seconds)
  self.clock.now = self.clock.now + seconds
end

local function url_decode(s)
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

local function url_encode(s)
  return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end
kit.url_encode = url_encode

-- Builds the request table the host would build. opts: headers, query
-- (table, merged over the target's query string), json (a table: encoded,
-- with Content-Type application/json), body (a raw string), token (bearer).
function Kit:build_request(method, target, opts)
  opts = opts or {}
  local path, qs = match(target, "^([^?]*)%??(.*)$")
  local query = {}
  for pair in gmatch(qs, "[^&]+") do
    local key, value = match(pair, "^([^=]*)=?(.*)$")
    key = url_decode(key)
    if query[key] == nil then query[key] = url_decode(value) end
  end
  for key, v in pairs(opts.query or {}) do query[key] = v end
  local headers = {}
  for name, v in pairs(opts.headers or {}) do headers[lower(name)] = v end
  local body = opts.body
  if opts.json ~= nil then
    body = assert(self.json.encode(opts.json))
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  if opts.token then headers.authorization = "Bearer " .. opts.token end
  self.requests = self.requests + 1
  return {method = method, path = url_decode(path ~= "" and path or "/"), query = query, headers = headers,
          body = body, id = "spec-" .. self.requests, remote_addr = "127.0.0.1"}
end

-- Runs app.handle as the host does: a script error becomes a 500 with the
-- docs/api.md body (the traceback is in res.error); a table body is encoded with
-- the host's encoder (an unencodable body is a 500 too).
function Kit:handle(req)
  local ok, status, body, headers = xpcall(function() return self.app.handle(req) end, traceback)
  local res = setmetatable({headers = {}}, Response)
  if not ok then
    res.status, res.error = 500, status
    res.body = '{"error":{"code":"internal","message":"internal server error"}}'
  else
    res.status, res.raw, res.headers = status, body, headers or {}
    if type(body) == "table" then
      local encoded, err = self.json.encode(body)
      if not encoded then
        res.status, res.error = 500, "response body is not encodable: " .. tostring(err)
      end
      res.body = encoded
    else
      res.body = body
    end
  end
  if res.body and (res:header("Content-Type") == nil or match(res:header("Content-Type"), "json")) then
    res.json = cjson.decode(res.body)
  end
  return res
end

function Kit:request(method, target, opts)
  return self:handle(self:build_request(method, target, opts))
end

function Kit:get(target, opts) return self:request("GET", target, opts) end
function Kit:post(target, opts) return self:request("POST", target, opts) end
function Kit:put(target, opts) return self:request("PUT", target, opts) end
function Kit:patch(target, opts) return self:request("PATCH", target, opts) end
function Kit:delete(target, opts) return self:request("DELETE", target, opts) end

-- ---- fixtures ------------------------------------------------------------------

local admins_made = 0

-- Puts an admin straight into the fake database. fields: email, name,
-- password (default "correct horse battery"), confirmed (default true),
-- old_hash (stored with older parameters). Returns the stored row.
function Kit:seed_admin(fields)
  fields = fields or {}
  admins_made = admins_made + 1
  local st = self.db.state
  st.seq.admins = st.seq.admins + 1
  local admin = {
    id = st.seq.admins,
    email = lower(fields.email or format("admin%d@example.com", admins_made)),
    name = fields.name or format("admin%d", admins_made),
    password_hash = self.password.stored and self.password.stored(fields.password or kit.PASSWORD, fields.old_hash)
      or assert(self.password.hash(fields.password or kit.PASSWORD)),
    confirmed = fields.confirmed ~= false,
    created_at = self.clock.now,
    updated_at = self.clock.now,
  }
  st.admins[#st.admins + 1] = admin
  return admin
end

kit.PASSWORD = "correct horse battery"

-- A confirmed admin logged in through POST /auth/login:
-- {admin = row, access = token, refresh = token, tokens = body, password = pw}.
function Kit:signed_in(fields)
  fields = fields or {}
  local admin = self:seed_admin(fields)
  local pw = fields.password or kit.PASSWORD
  local res = self:post("/auth/login", {json = {email = admin.email, password = pw}})
  if res.status ~= 200 then error("kit: login failed:\n" .. describe_response(res), 2) end
  return {admin = admin, access = res.json.access_token, refresh = res.json.refresh_token,
          tokens = res.json, password = pw}
end

-- The mails sent so far, and the last one: first runs the `mail` job as a
-- worker would (lib/outbox.lua), so what the routes queued is delivered.
function Kit:mails()
  self.app.jobs.mail.run()
  return self.mail.sent
end
function Kit:last_mail()
  local sent = self:mails()
  return sent[#sent]
end

-- The token of the link in a mail's text part (confirmation or reset).
function kit.link_token(mail)
  local token = mail and match(mail.text, "[?&]token=([%w_%-]+)")
  if not token then error("kit: no link with a token in this mail", 2) end
  return token
end

-- Users straight into the fake database: n users (or a list of field tables).
function Kit:seed_users(n_or_list, created_by)
  local list = n_or_list
  if type(n_or_list) == "number" then
    list = {}
    for i = 1, n_or_list do list[i] = {email = format("user%03d@example.com", i)} end
  end
  local st = self.db.state
  local out = {}
  for i, fields in ipairs(list) do
    st.seq.users = st.seq.users + 1
    local u = {id = st.seq.users, email = lower(fields.email), name = fields.name, active = fields.active ~= false,
               created_by = created_by, created_at = self.clock.now, updated_at = self.clock.now}
    st.users[#st.users + 1] = u
    out[i] = u
  end
  return out
end

return kit
