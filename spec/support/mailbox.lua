-- spec/support/mailbox.lua — mail as a person receives it, for end-to-end
-- specs: a real SMTP server (tools/smtp-sink.py) writing what it accepts to
-- a folder, the outbox folder of a server without MAIL_URL, and a small
-- MIME reader independent of the C code that wrote the message.
local socket = require "socket"
local unistd = require "posix.unistd"
local signal = require "posix.signal"
local wait = require "posix.sys.wait"
local fcntl = require "posix.fcntl"
local dirent = require "posix.dirent"

local mailbox = {}

local PYTHON = "/usr/bin/python3" -- Debian's, which has aiosmtpd
local SINK = "tools/smtp-sink.py"

function mailbox.tmpdir()
  local p = io.popen("mktemp -d /tmp/moonkeep-mail.XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

function mailbox.free_port()
  for _ = 1, 50 do
    local port = math.random(20000, 60000)
    local probe = socket.tcp()
    local ok = probe:bind("127.0.0.1", port)
    probe:close()
    if ok then return port end
  end
  error("no free port")
end

-- Calls fn every 50 ms until it returns a true value or `seconds` pass.
function mailbox.wait_for(seconds, fn)
  local deadline = socket.gettime() + seconds
  repeat
    local v = fn()
    if v then return v end
    socket.sleep(0.05)
  until socket.gettime() > deadline
  return nil
end

function mailbox.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Names in dir matching the Lua pattern, sorted.
function mailbox.files(dir, pattern)
  local out = {}
  local ok, list = pcall(dirent.dir, dir)
  if not ok or not list then return out end
  for _, name in ipairs(list) do
    if name:match(pattern) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

-- A real SMTP server on 127.0.0.1:port writing what it receives to dir.
-- Extra arguments go to tools/smtp-sink.py. Returns {stop = fn}.
function mailbox.start_sink(port, dir, ...)
  local args = {SINK, tostring(port), dir, ...}
  local log = dir .. ".log"
  local pid = assert(unistd.fork())
  if pid == 0 then
    local fd = fcntl.open(log, fcntl.O_WRONLY + fcntl.O_CREAT + fcntl.O_TRUNC, 420)
    unistd.dup2(fd, 1)
    unistd.dup2(fd, 2)
    unistd.exec(PYTHON, args)
    os.exit(127)
  end
  local up = mailbox.wait_for(15, function()
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    return ok
  end)
  assert(up, "smtp-sink did not start: " .. (mailbox.read_file(log) or ""))
  return {
    port = port,
    dir = dir,
    stop = function()
      signal.kill(pid, signal.SIGTERM)
      wait.wait(pid)
    end,
  }
end

function mailbox.qp_decode(s)
  return (s:gsub("=\r?\n", ""):gsub("=(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The decoded text/plain part of a raw message (or its only body).
function mailbox.text_part(raw)
  local part = raw:match("[Cc]ontent%-[Tt]ype: text/plain.-\r\n\r\n(.-)\r\n%-%-") or raw:match("\r\n\r\n(.*)$")
  return mailbox.qp_decode(part or "")
end

-- The newest message in dir whose To: contains `to`, as raw text.
function mailbox.message_to(dir, to, seconds)
  return mailbox.wait_for(seconds or 15, function()
    local names = mailbox.files(dir, "%.eml$")
    for i = #names, 1, -1 do
      local raw = mailbox.read_file(dir .. "/" .. names[i])
      local header = raw and raw:match("^(.-)\r\n\r\n") or ""
      if header:lower():find("\nto:[^\n]*" .. to:lower():gsub("%p", "%%%0")) then return raw end
    end
  end)
end

-- The first link in the message's text that starts with `prefix`, and its
-- token query parameter.
function mailbox.link(raw, prefix)
  local text = mailbox.text_part(raw)
  local link = text:match("(" .. prefix:gsub("%p", "%%%0") .. "[^%s\"<>]*)")
  return link, link and link:match("[?&]token=([^&%s]+)")
end

return mailbox
