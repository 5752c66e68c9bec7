-- host.mail against the real binary: the outbox folder, delivery to a real
-- SMTP server (tools/smtp-sink.py), retries when the server or the folder is
-- not there yet, and what is refused. The routes under test are
-- spec/fixtures/mail_test_routes.lua, installed as routes/mail_test.lua in a
-- copy of scripts/ (server.scripts_with): they hand the request's JSON to
-- mail.send.
--
-- Runs as root in CI, where chmod cannot make a folder unwritable: the
-- unwritable outbox is a path whose parent is a regular file (mkdir fails
-- with ENOTDIR whoever you are); removing that file "fixes the disk".
package.path = "spec/?.lua;" .. package.path -- support.* also without a .busted
local server = require "support.server"
local socket = require "socket"
local cjson = require "cjson.safe"
local stat = require "posix.sys.stat"
local util = require "support.util"
local mailbox = require "support.mailbox"

local ROUTES = "spec/fixtures/mail_test_routes.lua"
local PYTHON = "/usr/bin/python3" -- Debian's, which has aiosmtpd
local FROM = "Moonkeep Test <robot@moonkeep.test>"

-- ---- helpers -------------------------------------------------------------

local scripts_dir
local function scripts()
  scripts_dir = scripts_dir or server.scripts_with("mail_test", assert(util.read_file(ROUTES)))
  return scripts_dir
end

teardown(function()
  if scripts_dir then os.execute("rm -rf " .. scripts_dir) end
end)

local function start_server(env)
  env.MAIL_FROM = env.MAIL_FROM or FROM
  env.MAIL_URL = env.MAIL_URL or ""           -- empty is unset: outbox mode
  if not os.getenv("DATABASE_URL") then env.MIGRATE_ON_START = "false" end
  return server.start({scripts = scripts(), workers = 1, env = env})
end

local function send(srv, msg)
  return srv:request("POST", "/test/mail", {body = msg})
end

local function stats(srv)
  local res, err = srv:request("GET", "/test/mail/stats")
  assert(res, "GET /test/mail/stats failed: " .. tostring(err))
  return res.json
end

-- The first log line with this msg (and mail_id, when given).
local function log_line(srv, msg, id)
  return srv:log_line(msg, id and function(line) return line.mail_id == id end)
end

local function no_sanitizer_reports(srv)
  local text = srv:log_text()
  assert.is_nil(text:find("AddressSanitizer", 1, true), text)
  assert.is_nil(text:find("runtime error:", 1, true), text)
end

-- What a describe block started: the server (stopped, its log checked), the
-- sink, the temp folder.
local function shut_down(srv, sink, dir)
  if srv then
    srv:stop()
    no_sanitizer_reports(srv)
  end
  if sink then sink.stop() end
  os.execute("rm -rf " .. dir)
end

-- ---- a small MIME reader, independent of the C code ------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64_decode(s)
  s = s:gsub("[^%w+/]", "")
  local out, bits, nbits = {}, 0, 0
  for i = 1, #s do
    bits = bits * 64 + (B64:find(s:sub(i, i), 1, true) - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char(math.floor(bits / 2 ^ nbits))
      bits = bits % 2 ^ nbits
    end
  end
  return table.concat(out)
end

local function qp_decode(s)
  return (s:gsub("=\r\n", ""):gsub("=(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- RFC 2047 B-encoded UTF-8 words; whitespace between two words is dropped.
local function decode_words(v)
  v = v:gsub("(%?=)%s+(=%?)", "%1%2")
  return (v:gsub("=%?[Uu][Tt][Ff]%-8%?[Bb]%?([^?]*)%?=", b64_decode))
end

local function crlf_to_lf(s) return (s:gsub("\r\n", "\n")) end

-- headers (lower-case names, unfolded) and body of a message or a part.
local function parse_entity(raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  assert(head, "no empty line after the header")
  local headers = {}
  head = head:gsub("\r\n([ \t])", "%1")
  for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
    local name, value = line:match("^([%w-]+):[ \t]*(.*)$")
    assert(name, "malformed header line: " .. line)
    headers[name:lower()] = value
  end
  return headers, body
end

local function parse_message(raw)
  assert.is_nil(raw:find("[^\r]\n"), "a bare LF in the message")
  assert.is_nil(raw:find("\r[^\n]"), "a bare CR in the message")
  for line in raw:gmatch("([^\r\n]*)\r\n") do assert(#line <= 998, "line over 998 characters") end
  local headers, body = parse_entity(raw)
  local msg = {headers = headers, parts = {}}
  local boundary = headers["content-type"]:match('^multipart/alternative;%s*boundary="([^"]+)"')
  local entities = {}
  if boundary then
    local delim = "\r\n--" .. boundary
    local rest = "\r\n" .. body
    local pos = rest:find(delim, 1, true)
    assert(pos, "no first boundary")
    while true do
      local after = pos + #delim
      if rest:sub(after, after + 1) == "--" then break end
      local next_pos = rest:find(delim, after, true)
      assert(next_pos, "no closing boundary")
      entities[#entities + 1] = rest:sub(after + 2, next_pos - 1) -- skip the CRLF ending the boundary line
      pos = next_pos
    end
  else
    entities[1] = raw
  end
  for _, e in ipairs(entities) do
    local h, b = parse_entity(e)
    local ctype = h["content-type"]
    if boundary == nil then b = b:gsub("\r\n$", "") end -- the message's final CRLF
    assert.equal("quoted-printable", h["content-transfer-encoding"])
    msg.parts[#msg.parts + 1] = {type = ctype, body = qp_decode(b), raw = b}
  end
  return msg
end

-- Python's email package as a second, strict opinion.
local PY_CHECK = [[
import sys, json, email
from email import policy
m = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
defects = [str(d) for part in m.walk() for d in part.defects]
plain = m.get_body(preferencelist=('plain',))
html = m.get_body(preferencelist=('html',))
print(json.dumps({'subject': str(m['subject']), 'from': str(m['from']), 'to': str(m['to']),
  'text': plain.get_content() if plain else None, 'html': html.get_content() if html else None,
  'defects': defects}))
]]

local function python_view(path)
  local script = os.tmpname()
  server.write_file(script, PY_CHECK)
  local p = io.popen(("%s %q %q"):format(PYTHON, script, path))
  local out = p:read("*a")
  p:close()
  os.remove(script)
  return assert(cjson.decode(out), out)
end

-- ---- outside the server ----------------------------------------------------

describe("host.mail outside the server", function()
  local mail

  setup(function()
    package.cpath = "build/lua/?.so;" .. package.cpath
    mail = require "host.mail"
  end)

  it("raises a clear error from mail.send", function()
    local ok, err = pcall(mail.send, {to = "a@example.com", subject = "s", text = "t"})
    assert.is_false(ok)
    assert.matches("host.mail needs a running server", err, 1, true)
  end)

  it("raises on a non-table argument", function()
    local ok, err = pcall(mail.send, "a@example.com")
    assert.is_false(ok)
    assert.matches("bad argument #1 to '.-' %(table expected", err)
  end)

  it("reports zero counters", function()
    assert.same({queued = 0, sent = 0, failed = 0, retrying = 0}, mail.stats())
  end)
end)

-- ---- outbox mode -----------------------------------------------------------

describe("host.mail in outbox mode", function()
  local srv, dir, outbox

  setup(function()
    dir = util.tmpdir("mail")
    outbox = dir .. "/var/outbox" -- neither level exists yet
    srv = start_server({OUTBOX_DIR = outbox})
  end)

  teardown(function() shut_down(srv, nil, dir) end)

  local function eml_of(id)
    local name = util.wait_for(10, function() return util.files(outbox, "%-" .. id .. "%.eml$")[1] end)
    assert(name, "no outbox file for " .. id .. "\n" .. srv:log_text())
    return outbox .. "/" .. name, name
  end

  it("writes a well-formed multipart .eml whose parts decode to what was sent", function()
    local text = "Hello Zoë,\n\nconfirm here: https://example.test/auth/confirm?token=t0k3n-abc=def\n" ..
                 ".a line that starts with a dot\nFrom the start\ntrailing space \n\ttab\n" ..
                 string.rep("0123456789", 12) .. "\nend"
    local html = "<p>Hello Zo\195\171, <a href=\"https://example.test/?a=1&b=2\">confirm</a></p>"
    local subject = "Confirm your account \226\128\148 Zo\195\171 " .. string.rep("long ", 12)
    local res = send(srv, {to = "zoe@example.com", subject = subject, text = text, html = html})
    assert.equal(200, res.status)
    local id = res.json.id
    assert.matches("^%x+$", id)
    assert.equal(32, #id)

    local path, name = eml_of(id)
    assert.matches("^%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ%-" .. id .. "%.eml$", name)
    local msg = parse_message(util.read_file(path))
    local h = msg.headers
    assert.equal("Moonkeep Test <robot@moonkeep.test>", h.from)
    assert.equal("zoe@example.com", h.to)
    assert.equal(subject, decode_words(h.subject))
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d %+0000$", h.date)
    assert.equal("<" .. id .. "@moonkeep.test>", h["message-id"])
    assert.equal("1.0", h["mime-version"])
    assert.equal(2, #msg.parts)
    assert.equal("text/plain; charset=utf-8", msg.parts[1].type)
    assert.equal("text/html; charset=utf-8", msg.parts[2].type)
    assert.equal(text, crlf_to_lf(msg.parts[1].body))
    assert.equal(html, crlf_to_lf(msg.parts[2].body))
    for line in msg.parts[1].raw:gmatch("([^\r\n]*)") do
      assert(#line <= 76, "quoted-printable line over 76 characters: " .. line)
      assert(line:sub(1, 1) ~= ".", "a body line starts with a dot")
    end

    local py = python_view(path)
    assert.same({}, py.defects)
    assert.equal(subject, py.subject)
    assert.equal(text, crlf_to_lf(py.text))
    assert.equal(html, crlf_to_lf(py.html))
  end)

  it("writes a text-only message as one text/plain part", function()
    local res = send(srv, {to = "a@example.com", subject = "plain", text = "just text\n"})
    assert.equal(200, res.status)
    local msg = parse_message(util.read_file((eml_of(res.json.id))))
    assert.equal("plain", msg.headers.subject)
    assert.equal("text/plain; charset=utf-8", msg.headers["content-type"])
    assert.equal(1, #msg.parts)
    assert.equal("just text\n", crlf_to_lf(msg.parts[1].body))
  end)

  it("keeps the outbox private: folder 0700, files 0600, no temporary files left", function()
    local res = send(srv, {to = "a@example.com", subject = "mode", text = "x"})
    local path = eml_of(res.json.id)
    assert.equal(tonumber("700", 8), stat.stat(outbox).st_mode % 512)
    assert.equal(tonumber("600", 8), stat.stat(path).st_mode % 512)
    assert.same({}, util.files(outbox, "%.tmp$"))
  end)

  it("logs the path and the id, never the body", function()
    local secret = "s3cret-body-token-" .. math.random(1e9)
    local res = send(srv, {to = "a@example.com", subject = "log", text = "token " .. secret})
    local id = res.json.id
    local path = eml_of(id)
    local line = util.wait_for(5, function() return log_line(srv, "mail written to outbox", id) end)
    assert.is_table(line)
    assert.equal(path, line.path)
    assert.is_table(log_line(srv, "mail queued", id))
    assert.is_nil(srv:log_text():find(secret, 1, true))
  end)

  it("counts what it wrote", function()
    local before = stats(srv)
    local res = send(srv, {to = "a@example.com", subject = "count", text = "x"})
    eml_of(res.json.id)
    local after = util.wait_for(5, function()
      local s = stats(srv)
      return s.sent == before.sent + 1 and s
    end)
    assert.same({queued = 0, sent = before.sent + 1, failed = 0, retrying = 0}, after)
  end)

  describe("refuses an invalid message with nil, err", function()
    local cases = {
      {"CR LF in the subject", {to = "a@example.com", subject = "hi\r\nBcc: x@evil.test", text = "t"},
       "invalid message: subject must not contain CR, LF or NUL"},
      {"a LF in the subject", {to = "a@example.com", subject = "hi\nthere", text = "t"},
       "invalid message: subject must not contain CR, LF or NUL"},
      {"a NUL in the subject", {to = "a@example.com", subject = "hi\0there", text = "t"},
       "invalid message: subject must not contain CR, LF or NUL"},
      {"CR LF in to", {to = "a@example.com\r\nBcc: x@evil.test", subject = "s", text = "t"},
       "invalid message: to must not contain CR, LF or NUL"},
      {"a missing to", {subject = "s", text = "t"}, "invalid message: to is required"},
      {"an invalid to", {to = "not an address", subject = "s", text = "t"},
       "invalid message: to is not a valid email address"},
      {"two addresses in to", {to = "a@example.com, b@example.com", subject = "s", text = "t"},
       "invalid message: to is not a valid email address"},
      {"a missing text", {to = "a@example.com", subject = "s"}, "invalid message: text is required"},
    }
    for _, case in ipairs(cases) do
      it("for " .. case[1], function()
        local res = send(srv, case[2])
        assert.equal(422, res.status)
        assert.equal(case[3], res.json.error.message)
      end)
    end
  end)

  it("raises (a 500) when a field has the wrong type", function()
    local res = srv:request("POST", "/test/mail/bad", {body = {}})
    assert.equal(500, res.status)
    local line = log_line(srv, "script error")
    assert.matches("field 'to' must be a string, not number", line.error, 1, true)
  end)
end)

describe("host.mail when the outbox cannot be written", function()
  local srv, dir, blocker

  setup(function()
    dir = util.tmpdir("mail")
    blocker = dir .. "/not-a-folder"
    server.write_file(blocker, "a regular file where the outbox's parent should be\n")
    srv = start_server({OUTBOX_DIR = blocker .. "/outbox"})
  end)

  teardown(function() shut_down(srv, nil, dir) end)

  it("retries with backoff and writes the message once the folder can be made", function()
    local res = send(srv, {to = "a@example.com", subject = "later", text = "not lost"})
    assert.equal(200, res.status)
    local id = res.json.id
    local retry = util.wait_for(5, function() return log_line(srv, "mail delivery failed; retrying", id) end)
    assert(retry, srv:log_text())
    assert.matches("Not a directory", retry.error, 1, true)
    assert.is_true(retry.retry_in_s >= 0.8 and retry.retry_in_s <= 1.2)
    assert.equal(1, stats(srv).retrying)

    os.remove(blocker) -- the "disk" is fixed
    local name = util.wait_for(15, function() return util.files(blocker .. "/outbox", "%-" .. id .. "%.eml$")[1] end)
    assert(name, srv:log_text())
    local msg = parse_message(util.read_file(blocker .. "/outbox/" .. name))
    assert.equal("not lost", msg.parts[1].body)
    local s = util.wait_for(5, function() local x = stats(srv); return x.sent == 1 and x end)
    assert.same({queued = 0, sent = 1, failed = 0, retrying = 0}, s)
    assert.is_true(log_line(srv, "mail written to outbox", id).attempts >= 2)
  end)
end)

-- ---- SMTP mode -------------------------------------------------------------

describe("host.mail over SMTP", function()
  local srv, sink, dir, port

  setup(function()
    dir = util.tmpdir("mail")
    port = util.free_port()
    sink = mailbox.start_sink(port, dir .. "/sink")
    srv = start_server({
      -- credentials that must not show in the log (the sink offers no AUTH, so curl skips it)
      MAIL_URL = ("smtp://mailer%%40moonkeep:pa%%3Ass-w0rd-xyz@127.0.0.1:%d"):format(port),
      MAIL_TLS = "off",
    })
  end)

  teardown(function() shut_down(srv, sink, dir) end)

  local function received(id)
    return util.wait_for(10, function()
      for _, name in ipairs(util.files(dir .. "/sink", "%.eml$")) do
        local raw = util.read_file(dir .. "/sink/" .. name)
        if raw and raw:find("<" .. id .. "@", 1, true) then
          local envelope = cjson.decode(util.read_file(dir .. "/sink/" .. name:gsub("%.eml$", ".json")))
          return {raw = raw, envelope = envelope}
        end
      end
    end)
  end

  it("delivers to the server, with the right envelope", function()
    local text = "Your code: 123456\n.\nend of message, almost\n"
    local res = send(srv, {to = "user@example.com", subject = "Your code", text = text, html = "<b>123456</b>"})
    assert.equal(200, res.status)
    local got = received(res.json.id)
    assert(got, "not received\n" .. srv:log_text())
    assert.same({"user@example.com"}, got.envelope.rcpt_tos)
    assert.equal("robot@moonkeep.test", got.envelope.mail_from)
    local msg = parse_message(got.raw)
    assert.equal("Your code", msg.headers.subject)
    assert.equal(text, crlf_to_lf(msg.parts[1].body))
    local line = util.wait_for(5, function() return log_line(srv, "mail sent", res.json.id) end)
    assert.equal(1, line.attempts)
    assert.equal(("smtp://127.0.0.1:%d"):format(port), line.server)
  end)

  it("never logs the credentials of MAIL_URL", function()
    local text = srv:log_text()
    assert.is_nil(text:find("pa:ss", 1, true))
    assert.is_nil(text:find("pa%3Ass", 1, true))
    assert.is_nil(text:find("w0rd", 1, true))
    assert.is_nil(text:find("mailer", 1, true))
  end)

  it("gives up at once on a permanent (5xx) refusal", function()
    local before = stats(srv)
    local res = send(srv, {to = "reject-me@example.com", subject = "s", text = "t"})
    assert.equal(200, res.status)
    local line = util.wait_for(5, function() return log_line(srv, "mail delivery failed; giving up", res.json.id) end)
    assert(line, srv:log_text())
    assert.equal(550, line.smtp_code)
    assert.equal(1, line.attempts)
    assert.equal(before.failed + 1, stats(srv).failed)
  end)
end)

describe("host.mail when the SMTP server is down at send time", function()
  local srv, sink, dir, port

  setup(function()
    dir = util.tmpdir("mail")
    port = util.free_port()
    srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off"})
  end)

  teardown(function() shut_down(srv, sink, dir) end)

  it("still returns an id, and delivers after a retry once the server is up", function()
    local res = send(srv, {to = "late@example.com", subject = "patience", text = "eventually"})
    assert.equal(200, res.status)
    local id = res.json.id
    local retry = util.wait_for(5, function() return log_line(srv, "mail delivery failed; retrying", id) end)
    assert(retry, srv:log_text())
    assert.equal(1, retry.attempt)
    assert.equal(1, stats(srv).retrying)

    sink = mailbox.start_sink(port, dir .. "/sink")
    local name = util.wait_for(15, function() return util.files(dir .. "/sink", "%.eml$")[1] end)
    assert(name, srv:log_text())
    local msg = parse_message(util.read_file(dir .. "/sink/" .. name))
    assert.equal("<" .. id .. "@moonkeep.test>", msg.headers["message-id"])
    assert.equal("eventually", msg.parts[1].body)
    local sent = util.wait_for(5, function() return log_line(srv, "mail sent", id) end)
    assert.is_true(sent.attempts >= 2)
    assert.same({queued = 0, sent = 1, failed = 0, retrying = 0}, stats(srv))
  end)
end)

describe("host.mail on a slow SMTP server", function()
  -- libcurl 7.88's SMTP blocks while it waits for the reply to the end of
  -- data (curl issue #8555); the transfer thread takes that wait off the loop.
  local dir, port, events

  before_each(function()
    dir = util.tmpdir("mail")
    port = util.free_port()
    events = dir .. "/events"
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  -- What the sink has done so far: "data-received N", "data-replied N".
  local function sink_events()
    local out = {}
    for line in (util.read_file(events) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
    return out
  end

  local function sink_has(event)
    for _, e in ipairs(sink_events()) do
      if e == event then return true end
    end
  end

  it("answers /healthz while the server still holds its reply to the end of data", function()
    local sink = mailbox.start_sink(port, dir .. "/sink", "--delay-data", "2", "--events", events)
    local srv
    finally(function()
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off"})
    local id = send(srv, {to = "slow@example.com", subject = "slow", text = "take your time"}).json.id
    -- the sink has the whole message and now sits on its 250 for 2 s
    assert(util.wait_for(10, function() return sink_has("data-received 1") end), srv:log_text())

    local res = srv:request("GET", "/healthz", {timeout = 10})
    local seen = sink_events()
    assert.equal(200, res.status)
    assert.same({"data-received 1"}, seen) -- answered before the sink replied
    assert.is_nil(log_line(srv, "mail sent", id))

    -- and the mail still goes through once the sink answers
    assert(util.wait_for(10, function() return log_line(srv, "mail sent", id) end), srv:log_text())
    assert.same({"data-received 1", "data-replied 1"}, sink_events())
    assert.same({queued = 0, sent = 1, failed = 0, retrying = 0}, stats(srv))
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code)
    no_sanitizer_reports(srv)
  end)

  it("cuts, at shutdown, a transfer whose reply is still held, on a reused connection", function()
    local sink = mailbox.start_sink(port, dir .. "/sink", "--delay-data", "4", "--events", events)
    local srv
    finally(function()
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off",
                        MAIL_FLUSH_S = "1"})
    -- the first message leaves its connection in curl's cache
    local first = send(srv, {to = "a@example.com", text = "first"}).json.id
    assert(util.wait_for(10, function() return log_line(srv, "mail sent", first) end), srv:log_text())
    -- the second one takes it, and the sink sits on the reply to its data
    local second = send(srv, {to = "b@example.com", text = "second"}).json.id
    assert(util.wait_for(10, function() return sink_has("data-received 2") end), srv:log_text())

    local how, code = srv:stop() -- drains, flushes for MAIL_FLUSH_S = 1 s, then cuts
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.is_nil(sink_has("data-replied 2"), "the worker waited for the held reply")
    local line = log_line(srv, "mail dropped at shutdown: still queued")
    assert(line, srv:log_text())
    assert.matches(second, line.mail_ids, 1, true)
    assert.is_nil(log_line(srv, "mail sent", second))
    -- mail's own cancel cut it: the transfer service had nothing left to abort
    assert.is_nil(log_line(srv, "transfers aborted at shutdown"))
    no_sanitizer_reports(srv)
  end)
end)

describe("host.mail limits and shutdown", function()
  local dir

  before_each(function() dir = util.tmpdir("mail") end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("refuses with 'mail queue full' past MAIL_QUEUE_MAX", function()
    local srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(util.free_port()), MAIL_TLS = "off",
                              MAIL_QUEUE_MAX = "2", MAIL_FLUSH_S = "0"})
    finally(function() srv:stop() end)
    assert.equal(200, send(srv, {to = "a@example.com", text = "1"}).status)
    assert.equal(200, send(srv, {to = "a@example.com", text = "2"}).status)
    local res = send(srv, {to = "a@example.com", text = "3"})
    assert.equal(422, res.status)
    assert.equal("mail queue full", res.json.error.message)
    assert.equal(2, stats(srv).queued)
  end)

  it("insists on STARTTLS with MAIL_TLS=require", function()
    local port = util.free_port()
    local sink = mailbox.start_sink(port, dir .. "/sink") -- offers no STARTTLS
    local srv
    finally(function() -- busted keeps one finally per test
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "require",
                        MAIL_RETRY_MAX = "1"})
    local res = send(srv, {to = "a@example.com", text = "must not travel in clear"})
    local line = util.wait_for(5, function() return log_line(srv, "mail delivery failed; giving up", res.json.id) end)
    assert(line, srv:log_text())
    assert.equal("out of attempts", line.reason)
    assert.same({}, util.files(dir .. "/sink", "%.eml$"))
  end)

  it("tries queued mail once more on shutdown, and delivers it when it can", function()
    local port = util.free_port()
    local srv, sink
    finally(function()
      srv:stop()
      if sink then sink.stop() end
    end)
    srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off"})
    local res = send(srv, {to = "a@example.com", text = "flush me"})
    local id = res.json.id
    -- after the second failure the next attempt is >= 1.6 s away
    assert(util.wait_for(6, function()
      for _, l in ipairs(srv:log_lines()) do
        if l.msg == "mail delivery failed; retrying" and l.mail_id == id and l.attempt == 2 then return true end
      end
    end), srv:log_text())
    sink = mailbox.start_sink(port, dir .. "/sink")
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.is_table(log_line(srv, "mail: flushing the queue before exit"))
    assert.is_table(log_line(srv, "mail sent", id))
    assert.is_nil(log_line(srv, "mail dropped at shutdown: still queued"))
    assert.equal(1, #util.files(dir .. "/sink", "%.eml$"))
    no_sanitizer_reports(srv)
  end)

  it("logs the ids of the mail it drops on shutdown", function()
    local srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(util.free_port()), MAIL_TLS = "off",
                              MAIL_FLUSH_S = "1"})
    finally(function() srv:stop() end)
    local a = send(srv, {to = "a@example.com", text = "a"}).json.id
    local b = send(srv, {to = "b@example.com", text = "b"}).json.id
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code)
    local line = log_line(srv, "mail dropped at shutdown: still queued")
    assert(line, srv:log_text())
    assert.equal(2, line.dropped)
    assert.matches(a, line.mail_ids, 1, true)
    assert.matches(b, line.mail_ids, 1, true)
    no_sanitizer_reports(srv)
  end)

  it("does not hang on shutdown when the server never answers", function()
    local port = util.free_port()
    local hole = assert(socket.bind("127.0.0.1", port)) -- listens, never accepts: no greeting
    local srv
    finally(function()
      srv:stop()
      hole:close()
    end)
    srv = start_server({MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off", MAIL_FLUSH_S = "1"})
    local id = send(srv, {to = "a@example.com", text = "stuck"}).json.id
    socket.sleep(0.5) -- the attempt now waits for the greeting
    local started = socket.gettime()
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.is_true(socket.gettime() - started < 5)
    local line = log_line(srv, "mail dropped at shutdown: still queued")
    assert(line, srv:log_text())
    assert.matches(id, line.mail_ids, 1, true)
    no_sanitizer_reports(srv)
  end)

  it("refuses to start with a bad MAIL_URL: the master says why and forks no worker", function()
    local srv = server.start({scripts = scripts(), workers = 2, wait = false,
                              env = {MAIL_URL = "http://example.com", MIGRATE_ON_START = "false"}})
    finally(function() srv:stop() end)
    local how, code = srv:wait_exit(10)
    assert.equal("exited", how, srv:log_text())
    assert.equal(1, code)
    local line = log_line(srv, "configuration refused; not starting")
    assert(line, srv:log_text())
    assert.equal("master", line.role)
    assert.equal("mail", line.service)
    assert.equal('MAIL_URL must start with smtp:// or smtps://; got "http"', line.error)
    assert.is_nil(log_line(srv, "worker ready"), "no worker was forked")
  end)

  it("refuses to start with MAIL_TLS=off and an smtps:// MAIL_URL, credentials not logged", function()
    local srv = server.start({scripts = scripts(), workers = 1, wait = false,
                              env = {MAIL_URL = "smtps://robot:hunter2@127.0.0.1:1", MAIL_TLS = "off",
                                     MIGRATE_ON_START = "false"}})
    finally(function() srv:stop() end)
    local how, code = srv:wait_exit(10)
    assert.equal("exited", how, srv:log_text())
    assert.equal(1, code)
    local line = log_line(srv, "configuration refused; not starting")
    assert(line, srv:log_text())
    assert.equal("MAIL_TLS=off contradicts smtps:// (implicit TLS)", line.error)
    assert.is_nil(srv:log_text():find("hunter2", 1, true))
  end)
end)
