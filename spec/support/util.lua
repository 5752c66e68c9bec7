-- spec/support/util.lua — the small helpers every end-to-end spec needs:
-- a free TCP port, a temp folder, polling until something holds, reading a
-- file, listing a folder, sleeping, running a shell command or one SQL
-- statement, and starting a
-- helper process with its output in a log file. One home for them; support.server, support.mailbox
-- and the specs use these.
local socket = require "socket"
local unistd = require "posix.unistd"
local signal = require "posix.signal"
local wait = require "posix.sys.wait"
local fcntl = require "posix.fcntl"
local dirent = require "posix.dirent"

local util = {}

math.randomseed(os.time() + (unistd.getpid() or 0))

function util.sleep(seconds) socket.sleep(seconds) end

-- A port on 127.0.0.1 nothing listens on (bound and released).
function util.free_port()
  for _ = 1, 50 do
    local port = math.random(20000, 60000)
    local probe = socket.tcp()
    local ok = probe:bind("127.0.0.1", port)
    probe:close()
    if ok then return port end
  end
  error("no free port")
end

-- A fresh folder /tmp/moonkeep-<name>.XXXXXX (name defaults to "spec").
function util.tmpdir(name)
  local p = io.popen(("mktemp -d /tmp/moonkeep-%s.XXXXXX"):format(name or "spec"))
  local dir = p:read("*l")
  p:close()
  return dir
end

-- Calls fn every `interval` seconds (default 50 ms) until it returns a true
-- value, which it returns, or `seconds` pass (nil).
function util.wait_for(seconds, fn, interval)
  local deadline = socket.gettime() + seconds
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(interval or 0.05)
  until socket.gettime() > deadline
  return nil
end

-- The file's bytes, or nil when it cannot be opened.
function util.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Names in dir matching the Lua pattern, sorted ({} when dir is missing).
function util.files(dir, pattern)
  local out = {}
  local ok, list = pcall(dirent.dir, dir)
  if not ok or not list then return out end
  for _, name in ipairs(list) do
    if name:match(pattern) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

-- Runs `path` with `args` in a child process, stdout and stderr to `log`
-- (truncated, or appended to when `append`). Returns the child's pid.
function util.spawn(path, args, log, append)
  local pid = assert(unistd.fork())
  if pid == 0 then
    local mode = fcntl.O_WRONLY + fcntl.O_CREAT + (append and fcntl.O_APPEND or fcntl.O_TRUNC)
    local fd = fcntl.open(log, mode, 420)
    unistd.dup2(fd, 1)
    unistd.dup2(fd, 2)
    unistd.exec(path, args)
    os.exit(127)
  end
  return pid
end

-- Runs a shell command; returns its exit status and what it printed
-- (stdout and stderr together).
function util.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return code, (out:gsub("exit=%d+%s*$", ""))
end

-- Runs one SQL statement with psql against `url` (default $DATABASE_URL);
-- returns what it printed, unaligned, without the trailing newline. Raises
-- when psql fails.
function util.sql(query, url)
  local function quote(v) return "'" .. tostring(v):gsub("'", "'\\''") .. "'" end
  local code, out = util.sh(("psql %s -XtAqc %s"):format(quote(url or os.getenv("DATABASE_URL")), quote(query)))
  assert(code == 0, "psql failed: " .. out)
  return (out:gsub("%s+$", ""))
end

-- The median of a list of numbers (sorts the list).
function util.median(xs)
  table.sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) / 2] end
  return (xs[n / 2] + xs[n / 2 + 1]) / 2
end

-- SIGTERM to a child started by util.spawn, and reaps it.
function util.stop(pid)
  signal.kill(pid, signal.SIGTERM)
  wait.wait(pid)
end

return util
