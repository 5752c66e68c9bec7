-- spec/support/server.lua — starts the real build/moonkeep for end-to-end
-- specs and stops it. The binary is $MOONKEEP_BIN (default build/moonkeep),
-- the database $DATABASE_URL (tools/test.sh starts one). Logs go to a file
-- so specs can read the JSON lines.
local posix = require "posix"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local signal = require "posix.signal"
local fcntl = require "posix.fcntl"
local stdlib = require "posix.stdlib"
local socket = require "socket"
local cjson = require "cjson.safe"
local client = require "support.http_client"
local util = require "support.util"

local server = {}
local Server = {}
Server.__index = Server

local free_port = util.free_port
local sleep = util.sleep
server.sleep = sleep

-- opts: env = {...}, scripts = dir, workers = n, wait = seconds,
-- bin = executable, args = its arguments (default {"serve"}), pipe = true
-- (stdout and stderr into a pipe that `cat` copies to the log file, as under
-- Docker, instead of the file itself; "slow": a line-by-line shell loop
-- instead of cat, so the pipe fills up)
function server.start(opts)
  opts = opts or {}
  local port = opts.port or free_port()
  local log_path = os.tmpname()
  local bin = opts.bin or os.getenv("MOONKEEP_BIN") or "build/moonkeep"
  local outbox = os.tmpname()
  os.remove(outbox)
  local env = {
    PORT = tostring(port), HOST = "127.0.0.1", WORKERS = tostring(opts.workers or 1),
    SCRIPTS_DIR = opts.scripts or "scripts", LOG_LEVEL = "debug",
    JWT_SECRET = os.getenv("JWT_SECRET") or "spec-secret-spec-secret-spec-secret-0123456789",
    OUTBOX_DIR = outbox, PUBLIC_URL = ("http://127.0.0.1:%d"):format(port),
    -- every server of the suite shares one database: each sends only its
    -- own mail (specs that restart a server, or run replicas, pass one)
    MAIL_GROUP = ("spec-%d"):format(port),
    -- every spec runs from 127.0.0.1: the per-client hashing budget is off
    -- (docs/api.md says test suites turn it off), but where a spec sets it
    CLIENT_HASH_BUDGET_PER_MIN = "0",
  }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local out = assert(fcntl.open(log_path, fcntl.O_WRONLY + fcntl.O_CREAT + fcntl.O_TRUNC, 420))
  local cat_pid
  if opts.pipe then
    local r, w = assert(unistd.pipe())
    cat_pid = assert(unistd.fork())
    if cat_pid == 0 then
      unistd.close(w)
      unistd.dup2(r, 0)
      unistd.dup2(out, 1)
      if opts.pipe == "slow" then -- a reader that lags, so writers find the pipe full
        unistd.execp("sh", {"-c", "while IFS= read -r line; do printf '%s\\n' \"$line\"; done"})
      end
      unistd.execp("cat", {})
      os.exit(127)
    end
    unistd.close(r)
    unistd.close(out)
    out = w
  end
  local pid = assert(unistd.fork())
  if pid == 0 then
    for k, v in pairs(env) do
      if v == false then stdlib.setenv(k, nil) else stdlib.setenv(k, tostring(v)) end
    end
    unistd.dup2(out, 1)
    unistd.dup2(out, 2)
    unistd.execp(bin, opts.args or {"serve"})
    os.exit(127)
  end
  unistd.close(out)
  local self = setmetatable({pid = pid, cat_pid = cat_pid, port = port, log_path = log_path, env = env,
                             outbox = outbox}, Server)
  if opts.wait ~= false then assert(self:wait_ready(opts.wait or 20), "server did not start:\n" .. self:log_text()) end
  return self
end

function Server:wait_ready(seconds)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    local res = client.request(self.port, "GET", "/healthz", {timeout = 1})
    if res and res.status == 200 then return true end
    local done = wait.wait(self.pid, wait.WNOHANG)
    if done ~= 0 and done ~= nil then self.exited = true; return false end
    sleep(0.05)
  end
  return false
end

function Server:request(method, path, opts)
  return client.request(self.port, method, path, opts)
end

function Server:connect() return client.connect(self.port) end

function Server:kill(sig)
  signal.kill(self.pid, sig or signal.SIGTERM)
end

-- Waits for the master to exit; returns how ("exited", code) or ("killed", signo).
function Server:wait_exit(seconds)
  local deadline = socket.gettime() + (seconds or 30)
  while socket.gettime() < deadline do
    local pid, how, code = wait.wait(self.pid, wait.WNOHANG)
    if pid == self.pid then
      self.exited, self.how, self.code = true, how, code
      return how, code
    end
    sleep(0.05)
  end
  return nil, "timeout"
end

-- Sanitizer reports in the log (any process of the server) fail the spec.
function Server:assert_no_sanitizer_reports()
  local text = self:log_text()
  for _, marker in ipairs({"AddressSanitizer", "LeakSanitizer", "runtime error:"}) do
    local at = text:find(marker, 1, true)
    if at then error("sanitizer report in the server log:\n" .. text:sub(math.max(1, at - 200), at + 3000), 2) end
  end
end

function Server:stop()
  if not self.exited then
    self:kill(signal.SIGTERM)
    local how, code = self:wait_exit(30)
    if not how then
      self:kill(signal.SIGKILL)
      self:wait_exit(5)
    end
    self.how, self.code = how, code
  end
  if self.cat_pid then -- it ends with the last writer
    wait.wait(self.cat_pid)
    self.cat_pid = nil
  end
  self:assert_no_sanitizer_reports()
  return self.how, self.code
end

function Server:log_text()
  return util.read_file(self.log_path) or ""
end

-- Every JSON line of the log, decoded.
function Server:log_lines()
  local lines = {}
  for line in self:log_text():gmatch("[^\n]+") do
    lines[#lines + 1] = cjson.decode(line) or {unparsed = line}
  end
  return lines
end

-- The pids of the live workers (children of the master).
-- The first log line with this msg (and for which match(line) holds, when
-- given), or nil.
function Server:log_line(msg, match)
  for _, line in ipairs(self:log_lines()) do
    if line.msg == msg and (match == nil or match(line)) then return line end
  end
end

function Server:worker_pids()
  local pids = {}
  local f = io.open("/proc/" .. self.pid .. "/task/" .. self.pid .. "/children")
  if f then
    for pid in f:read("*a"):gmatch("%d+") do pids[#pids + 1] = tonumber(pid) end
    f:close()
  end
  return pids
end

-- A copy of scripts/ in a temp folder that a spec may change.
function server.copy_scripts(from)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute(("cp -r %q %q"):format(from or "scripts", dir)) == 0 or true)
  return dir
end

-- A copy of scripts/ with one more route module, registered in app.lua and
-- in the OpenAPI document (the self-check refuses undocumented routes).
-- `source` is the module's text; it returns a list of routes. Returns the
-- copy's folder.
function server.scripts_with(module_name, source)
  local dir = server.copy_scripts()
  server.write_route_module(dir, module_name, source)
  local app_path = dir .. "/app.lua"
  local f = assert(io.open(app_path))
  local app = f:read("*a")
  f:close()
  app = app:gsub("local ROUTE_MODULES = {", "local ROUTE_MODULES = {\n  \"routes." .. module_name .. "\",", 1)
  server.write_file(app_path, app)
  return dir
end

-- (Re)writes routes/<name>.lua in a scripts copy, wrapping `source` so its
-- routes are added to the OpenAPI document.
function server.write_route_module(dir, module_name, source)
  server.write_file(dir .. "/routes/" .. module_name .. ".lua", "local routes = (function()\n" .. source .. [==[

end)()
local openapi = require "openapi"
for _, route in ipairs(routes) do
  local item = openapi.document.paths[route[2]] or {}
  item[route[1]:lower()] = {summary = "test route", responses = {["200"] = {description = "test"}}}
  openapi.document.paths[route[2]] = item
end
return routes
]==])
end

function server.write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

server.posix = posix
server.signal = signal
return server
