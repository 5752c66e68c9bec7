-- spec/support/mailbox.lua — mail as a person receives it, for end-to-end
-- specs: a real SMTP server (tools/smtp-sink.py) writing what it accepts to
-- a folder, the outbox folder of a server without MAIL_URL, and a small
-- MIME reader independent of the C code that wrote the message.
local socket = require "socket"
local util = require "support.util"

local mailbox = {}

local PYTHON = "/usr/bin/python3" -- Debian's, which has aiosmtpd
local SINK = "tools/smtp-sink.py"

-- A real SMTP server on 127.0.0.1:port writing what it receives to dir.
-- Extra arguments go to tools/smtp-sink.py. Returns {stop = fn}.
function mailbox.start_sink(port, dir, ...)
  local log = dir .. ".log"
  local pid = util.spawn(PYTHON, {SINK, tostring(port), dir, ...}, log)
  local up = util.wait_for(15, function()
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    return ok
  end)
  assert(up, "smtp-sink did not start: " .. (util.read_file(log) or ""))
  return {
    port = port,
    dir = dir,
    stop = function() util.stop(pid) end,
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
  return util.wait_for(seconds or 15, function()
    local names = util.files(dir, "%.eml$")
    for i = #names, 1, -1 do
      local raw = util.read_file(dir .. "/" .. names[i])
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
