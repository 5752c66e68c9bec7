-- host.mail against the real binary: mail.deliver makes one delivery
-- attempt while the calling request waits, into the outbox folder or to a
-- real SMTP server (tools/smtp-sink.py), and says how it went: true, or
-- nil, err, permanent. The routes under test are
-- spec/fixtures/mail_test_routes.lua, installed as routes/mail_test.lua in a
-- copy of scripts/ (server.scripts_with): they hand the request's JSON to
-- mail.deliver and answer 200 {delivered, id} or 422 {error, permanent}.
--
-- Retries, backoff and giving up are not host.mail's: they belong to the
-- mail outbox (scripts/lib/outbox.lua over the mail_outbox table), which
-- spec/e2e/outbox_spec.lua covers. Here a "later attempt" is a second
-- request with the same id. The copy of scripts/ runs without the `mail`
-- job, so no outbox row of the shared database is sent through the server
-- under test and its counters are the spec's alone.
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
  if scripts_dir then return scripts_dir end
  scripts_dir = server.scripts_with("mail_test", assert(util.read_file(ROUTES)))
  -- without the outbox job (app.jobs.mail): see the header
  local app_path = scripts_dir .. "/app.lua"
  local app, n = util.read_file(app_path):gsub("\n%s*mail%s*=%s*{every%s*=[^\n]*", "", 1)
  assert(n == 1, "app.lua no longer lists the mail job as `mail = {every = ...}`: update mail_spec.lua")
  server.write_file(app_path, app)
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

local function smtp_url(port) return ("smtp://127.0.0.1:%d"):format(port) end

-- One attempt: the request returns when mail.deliver does.
local function deliver(srv, msg, opts)
  local res, err = srv:request("POST", "/test/mail", {body = msg, timeout = opts and opts.timeout})
  assert(res, "POST /test/mail failed: " .. tostring(err))
  return res
end

-- The same, without waiting: the request is sent on a connection of its
-- own and answer(conn) reads its response later.
local function deliver_async(srv, msg)
  local conn = assert(srv:connect())
  local body = assert(cjson.encode(msg))
  assert(conn:send_raw(("POST /test/mail HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" ..
                        "Content-Length: %d\r\nConnection: close\r\n\r\n%s"):format(#body, body)))
  return conn
end

local function answer(conn)
  local res, err = conn:read_response("POST")
  conn:close()
  return res, err
end

local function stats(srv)
  local res, err = srv:request("GET", "/test/mail/stats")
  assert(res, "GET /test/mail/stats failed: " .. tostring(err))
  return res.json
end

local function fresh_id()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(12)
  f:close()
  return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The first log line with this msg (and mail_id, when given).
local function log_line(srv, msg, id)
  return srv:log_line(msg, id and function(line) return line.mail_id == id end)
end

-- What a describe block started: the server (stopped: its log is checked
-- for sanitizer reports), the sink, the temp folder.
local function shut_down(srv, sink, dir)
  if srv then srv:stop() end
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

  it("raises a clear error from mail.deliver", function()
    local ok, err = pcall(mail.deliver, {id = "x1", to = "a@example.com", subject = "s", text = "t"})
    assert.is_false(ok)
    assert.matches("host.mail needs a running server", err, 1, true)
  end)

  it("raises on a non-table argument", function()
    local ok, err = pcall(mail.deliver, "a@example.com")
    assert.is_false(ok)
    assert.matches("bad argument #1 to '.-' %(table expected", err)
  end)

  it("has no mail.send any more", function()
    assert.is_nil(mail.send)
  end)

  it("reports zero counters", function()
    assert.same({sending = 0, sent = 0, failed = 0}, mail.stats())
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

  -- The file is written during the call: no waiting for it.
  local function eml_of(id)
    local name = util.files(outbox, "%-" .. id:gsub("%p", "%%%0") .. "%.eml$")[1]
    assert(name, "no outbox file for " .. id .. "\n" .. srv:log_text())
    return outbox .. "/" .. name, name
  end

  it("writes a well-formed multipart .eml whose parts decode to what was sent", function()
    local text = "Hello Zoë,\n\nconfirm here: https://example.test/auth/confirm?token=t0k3n-abc=def\n" ..
                 ".a line that starts with a dot\nFrom the start\ntrailing space \n\ttab\n" ..
                 string.rep("0123456789", 12) .. "\nend"
    local html = "<p>Hello Zo\195\171, <a href=\"https://example.test/?a=1&b=2\">confirm</a></p>"
    local subject = "Confirm your account \226\128\148 Zo\195\171 " .. string.rep("long ", 12)
    local res = deliver(srv, {to = "zoe@example.com", subject = subject, text = text, html = html})
    assert.equal(200, res.status)
    assert.is_true(res.json.delivered)
    local id = res.json.id
    assert.matches("^%x+$", id) -- the fixture's default id
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
    assert.equal("auto-generated", h["auto-submitted"])
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
    local res = deliver(srv, {to = "a@example.com", subject = "plain", text = "just text\n"})
    assert.equal(200, res.status)
    local msg = parse_message(util.read_file((eml_of(res.json.id))))
    assert.equal("plain", msg.headers.subject)
    assert.equal("text/plain; charset=utf-8", msg.headers["content-type"])
    assert.equal(1, #msg.parts)
    assert.equal("just text\n", crlf_to_lf(msg.parts[1].body))
  end)

  it("takes the caller's id for the Message-ID and the file name (64 of [A-Za-z0-9._-])", function()
    local id = "Row-42_retry.1-" .. string.rep("x", 49)
    assert.equal(64, #id)
    local res = deliver(srv, {id = id, to = "a@example.com", subject = "id", text = "x"})
    assert.equal(200, res.status)
    assert.same({delivered = true, id = id}, res.json)
    local path = eml_of(id)
    assert.equal("<" .. id .. "@moonkeep.test>", parse_message(util.read_file(path)).headers["message-id"])
  end)

  it("keeps the outbox private: folder 0700, files 0600, no temporary files left", function()
    local res = deliver(srv, {to = "a@example.com", subject = "mode", text = "x"})
    local path = eml_of(res.json.id)
    assert.equal(tonumber("700", 8), stat.stat(outbox).st_mode % 512)
    assert.equal(tonumber("700", 8), stat.stat(dir .. "/var").st_mode % 512) -- the parent it made too
    assert.equal(tonumber("600", 8), stat.stat(path).st_mode % 512)
    assert.same({}, util.files(outbox, "%.tmp$"))
  end)

  it("logs the path, the id and the request, never the body", function()
    local secret = "s3cret-body-token-" .. math.random(1e9)
    local res = deliver(srv, {to = "a@example.com", subject = "log", text = "token " .. secret,
                              html = "<p>" .. secret .. "</p>"})
    local id = res.json.id
    local path = eml_of(id)
    local line = log_line(srv, "mail written to outbox", id)
    assert.is_table(line, srv:log_text())
    assert.equal("info", line.level)
    assert.equal(path, line.path)
    assert.is_string(line.request_id)
    assert.is_number(line.duration_ms)
    assert.is_nil(srv:log_text():find(secret, 1, true))
  end)

  it("counts what it wrote", function()
    local before = stats(srv)
    local res = deliver(srv, {to = "a@example.com", subject = "count", text = "x"})
    eml_of(res.json.id)
    assert.same({sending = 0, sent = before.sent + 1, failed = before.failed}, stats(srv))
  end)

  describe("refuses an invalid message with nil, err, permanent", function()
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
      {"an empty to", {to = "", subject = "s", text = "t"}, "invalid message: to is required"},
      {"an invalid to", {to = "not an address", subject = "s", text = "t"},
       "invalid message: to is not a valid email address"},
      {"two addresses in to", {to = "a@example.com, b@example.com", subject = "s", text = "t"},
       "invalid message: to is not a valid email address"},
      {"a missing text", {to = "a@example.com", subject = "s"}, "invalid message: text is required"},
      {"a missing id", {id = cjson.null, to = "a@example.com", text = "t"},
       "invalid message: id must be 1 to 64 letters, digits, '.', '-' or '_'"},
      {"an empty id", {id = "", to = "a@example.com", text = "t"},
       "invalid message: id must be 1 to 64 letters, digits, '.', '-' or '_'"},
      {"an id of 65 characters", {id = string.rep("a", 65), to = "a@example.com", text = "t"},
       "invalid message: id must be 1 to 64 letters, digits, '.', '-' or '_'"},
      {"a path in the id", {id = "../../etc/x", to = "a@example.com", text = "t"},
       "invalid message: id must be 1 to 64 letters, digits, '.', '-' or '_'"},
      {"a space in the id", {id = "a b", to = "a@example.com", text = "t"},
       "invalid message: id must be 1 to 64 letters, digits, '.', '-' or '_'"},
      {"a > in the id", {id = "a>b", to = "a@example.com", text = "t"},
       "invalid message: id must be 1 to 64 letters, digits, '.', '-' or '_'"},
    }
    for _, case in ipairs(cases) do
      it("for " .. case[1], function()
        local res = deliver(srv, case[2])
        assert.equal(422, res.status)
        assert.equal(case[3], res.json.error.message)
        assert.is_true(res.json.permanent)
      end)
    end

    it("and neither writes, counts nor logs it as an attempt", function()
      local before = stats(srv)
      local files = #util.files(outbox, "%.eml$")
      local id = "invalid-" .. fresh_id()
      assert.equal(422, deliver(srv, {id = id, to = "nobody", text = "t"}).status)
      assert.same(before, stats(srv))
      assert.equal(files, #util.files(outbox, "%.eml$"))
      assert.is_nil(log_line(srv, "mail delivery attempt failed", id))
    end)
  end)

  describe("raises (a 500) on misuse", function()
    local function misuse(case)
      local res = srv:request("POST", "/test/mail/bad", {body = {case = case}})
      assert.equal(500, res.status)
      local found
      for _, line in ipairs(srv:log_lines()) do
        if line.msg == "script error" then found = line end -- the latest
      end
      assert.is_table(found, srv:log_text())
      return found.error
    end

    it("when a field has the wrong type", function()
      assert.matches("bad argument #1 to 'deliver' (field 'to' must be a string, not number)", misuse("type"), 1, true)
    end)

    it("when the argument is not a table", function()
      assert.matches("bad argument #1 to 'deliver' (table expected, got string)", misuse("not_a_table"), 1, true)
    end)

    it("when called in a coroutine the script made, which cannot wait", function()
      assert.matches("mail.deliver can only wait in the request's own coroutine", misuse("coroutine"), 1, true)
    end)

    it("and a JSON id of the wrong type raises too", function()
      local res = deliver(srv, {id = 42, to = "a@example.com", text = "t"})
      assert.equal(500, res.status)
    end)
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

  it("fails the attempt as not permanent, and a later attempt writes it once the folder can be made", function()
    local id = fresh_id()
    local msg = {id = id, to = "a@example.com", subject = "later", text = "not lost"}
    local res = deliver(srv, msg)
    assert.equal(422, res.status)
    assert.is_false(res.json.permanent)
    assert.matches("outbox " .. blocker:gsub("%p", "%%%0") .. "/outbox: cannot create the folder: Not a directory",
                   res.json.error.message)
    local line = log_line(srv, "mail delivery attempt failed", id)
    assert(line, srv:log_text())
    assert.equal("warn", line.level)
    assert.matches("Not a directory", line.error, 1, true)
    assert.same({sending = 0, sent = 0, failed = 1}, stats(srv))

    os.remove(blocker) -- the "disk" is fixed
    res = deliver(srv, msg)
    assert.equal(200, res.status)
    local name = util.files(blocker .. "/outbox", "%-" .. id .. "%.eml$")[1]
    assert(name, srv:log_text())
    local parsed = parse_message(util.read_file(blocker .. "/outbox/" .. name))
    assert.equal("not lost", parsed.parts[1].body)
    assert.equal("<" .. id .. "@moonkeep.test>", parsed.headers["message-id"])
    assert.same({sending = 0, sent = 1, failed = 1}, stats(srv))
    assert.is_table(log_line(srv, "mail written to outbox", id))
    assert.same({}, util.files(blocker .. "/outbox", "%.tmp$"))
  end)
end)

-- ---- SMTP mode -------------------------------------------------------------

-- The message the sink received with this id in its Message-ID, and its envelope.
local function received(sink_dir, id, seconds)
  return util.wait_for(seconds or 10, function()
    for _, name in ipairs(util.files(sink_dir, "%.eml$")) do
      local raw = util.read_file(sink_dir .. "/" .. name)
      if raw and raw:find("<" .. id .. "@", 1, true) then
        local envelope = cjson.decode(util.read_file(sink_dir .. "/" .. name:gsub("%.eml$", ".json")))
        return {raw = raw, envelope = envelope}
      end
    end
  end)
end

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
      MAX_BODY_BYTES = tostring(1024 * 1024), -- room for the large message
    })
  end)

  teardown(function() shut_down(srv, sink, dir) end)

  it("delivers to the server before answering, with the right envelope and the caller's Message-ID", function()
    local before = stats(srv)
    local id = "outbox-row-" .. fresh_id()
    local text = "Your code: 123456\n.\nend of message, almost\n"
    local res = deliver(srv, {id = id, to = "user@example.com", subject = "Your code", text = text,
                              html = "<b>123456</b>"})
    assert.equal(200, res.status)
    assert.same({delivered = true, id = id}, res.json)
    local got = received(dir .. "/sink", id, 0) -- already there: the call waited for the 250
    assert(got, "not received\n" .. srv:log_text())
    assert.same({"user@example.com"}, got.envelope.rcpt_tos)
    assert.equal("robot@moonkeep.test", got.envelope.mail_from)
    local msg = parse_message(got.raw)
    assert.equal("Your code", msg.headers.subject)
    assert.equal("<" .. id .. "@moonkeep.test>", msg.headers["message-id"])
    assert.equal(text, crlf_to_lf(msg.parts[1].body))
    local line = log_line(srv, "mail sent", id)
    assert.is_table(line, srv:log_text())
    assert.equal(("smtp://127.0.0.1:%d"):format(port), line.server)
    assert.is_string(line.request_id)
    assert.same({sending = 0, sent = before.sent + 1, failed = before.failed}, stats(srv))
  end)

  it("delivers a large message intact", function()
    local lines = {}
    for i = 1, 4000 do lines[i] = ("line %05d: %s"):format(i, string.rep("abcdefghij", 5)) end
    local text = table.concat(lines, "\n")
    local id = fresh_id()
    local res = deliver(srv, {id = id, to = "big@example.com", subject = "big", text = text})
    assert.equal(200, res.status)
    local got = received(dir .. "/sink", id, 0)
    assert(got, srv:log_text())
    assert.equal(text, crlf_to_lf(parse_message(got.raw).parts[1].body))
  end)

  it("runs several attempts at once, each answering its own request", function()
    local before = stats(srv)
    local conns, ids = {}, {}
    for i = 1, 6 do -- six requests waiting at once, each on its own attempt
      ids[i] = fresh_id()
      conns[i] = deliver_async(srv, {id = ids[i], to = ("n%d@example.com"):format(i), text = "n" .. i})
    end
    for i = 1, 6 do
      local res = answer(conns[i])
      assert(res, srv:log_text())
      assert.same({delivered = true, id = ids[i]}, res.json)
      local got = received(dir .. "/sink", ids[i], 0)
      assert(got, srv:log_text())
      assert.same({("n%d@example.com"):format(i)}, got.envelope.rcpt_tos)
    end
    assert.same({sending = 0, sent = before.sent + 6, failed = before.failed}, stats(srv))
  end)

  it("never logs the credentials of MAIL_URL", function()
    local text = srv:log_text()
    assert.is_nil(text:find("pa:ss", 1, true))
    assert.is_nil(text:find("pa%3Ass", 1, true))
    assert.is_nil(text:find("w0rd", 1, true))
    assert.is_nil(text:find("mailer", 1, true))
  end)

  it("reports a 5xx refusal as permanent", function()
    local before = stats(srv)
    local id = fresh_id()
    local res = deliver(srv, {id = id, to = "reject-me@example.com", subject = "s", text = "t"})
    assert.equal(422, res.status)
    assert.is_true(res.json.permanent)
    assert.is_string(res.json.error.message)
    local line = log_line(srv, "mail delivery attempt failed", id)
    assert(line, srv:log_text())
    assert.equal("warn", line.level)
    assert.equal(550, line.smtp_code)
    assert.same({sending = 0, sent = before.sent, failed = before.failed + 1}, stats(srv))
    assert.is_nil(received(dir .. "/sink", id, 0))
  end)
end)

describe("host.mail when the SMTP server is down", function()
  local srv, sink, dir, port

  setup(function()
    dir = util.tmpdir("mail")
    port = util.free_port()
    srv = start_server({MAIL_URL = smtp_url(port), MAIL_TLS = "off"})
  end)

  teardown(function() shut_down(srv, sink, dir) end)

  it("fails the attempt as not permanent, and a later attempt delivers once the server is up", function()
    local id = fresh_id()
    local msg = {id = id, to = "late@example.com", subject = "patience", text = "eventually"}
    local res = deliver(srv, msg)
    assert.equal(422, res.status)
    assert.is_false(res.json.permanent)
    assert.matches("connect", res.json.error.message, 1, true)
    local line = log_line(srv, "mail delivery attempt failed", id)
    assert(line, srv:log_text())
    assert.matches("connect", line.error, 1, true)
    assert.is_nil(line.smtp_code)
    assert.same({sending = 0, sent = 0, failed = 1}, stats(srv))

    sink = mailbox.start_sink(port, dir .. "/sink")
    res = deliver(srv, msg)
    assert.equal(200, res.status)
    local got = received(dir .. "/sink", id, 0)
    assert(got, srv:log_text())
    local parsed = parse_message(got.raw)
    assert.equal("<" .. id .. "@moonkeep.test>", parsed.headers["message-id"])
    assert.equal("eventually", parsed.parts[1].body)
    assert.is_table(log_line(srv, "mail sent", id))
    assert.same({sending = 0, sent = 1, failed = 1}, stats(srv))
  end)
end)

describe("host.mail on a slow SMTP server", function()
  -- libcurl 7.88's SMTP blocks while it waits for the reply to the end of
  -- data (curl issue #8555); the transfer thread takes that wait off the
  -- loop, and the request that called mail.deliver waits without holding it.
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

  -- Established TCP connections to 127.0.0.1:port (the client side of each).
  local function connections_to(p)
    local n = 0
    for line in (util.read_file("/proc/net/tcp") or ""):gmatch("[^\n]+") do
      local rem_port, st = line:match("^%s*%d+: %x+:%x+ %x+:(%x+) (%x%x)")
      if rem_port and tonumber(rem_port, 16) == p and st == "01" then n = n + 1 end
    end
    return n
  end

  it("answers /healthz while the server still holds its reply to the end of data", function()
    local sink = mailbox.start_sink(port, dir .. "/sink", "--delay-data", "2", "--events", events)
    local srv
    finally(function()
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = smtp_url(port), MAIL_TLS = "off"})
    local id = fresh_id()
    local conn = deliver_async(srv, {id = id, to = "slow@example.com", subject = "slow", text = "take your time"})
    -- the sink has the whole message and now sits on its 250 for 2 s
    assert(util.wait_for(10, function() return sink_has("data-received 1") end), srv:log_text())

    local res = srv:request("GET", "/healthz", {timeout = 10})
    local during = stats(srv)
    local seen = sink_events()
    assert.equal(200, res.status)
    assert.same({"data-received 1"}, seen) -- answered before the sink replied
    assert.same({sending = 1, sent = 0, failed = 0}, during)
    assert.is_nil(log_line(srv, "mail sent", id))

    -- and the waiting request gets its answer once the sink replies
    local reply = answer(conn)
    assert(reply, srv:log_text())
    assert.equal(200, reply.status)
    assert.same({delivered = true, id = id}, reply.json)
    assert.same({"data-received 1", "data-replied 1"}, sink_events())
    assert.is_table(log_line(srv, "mail sent", id))
    assert.same({sending = 0, sent = 1, failed = 0}, stats(srv))
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code)
  end)

  it("cuts the attempt when its client goes away, on a reused connection, without waiting for the reply", function()
    local sink = mailbox.start_sink(port, dir .. "/sink", "--delay-data", "3", "--events", events)
    local srv
    finally(function()
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = smtp_url(port), MAIL_TLS = "off"})
    -- the first message leaves its connection in curl's cache
    local first = fresh_id()
    assert.equal(200, deliver(srv, {id = first, to = "a@example.com", text = "first"}, {timeout = 15}).status)
    assert.equal(1, connections_to(port))
    -- the second one takes it, and the sink sits on the reply to its data
    local second = fresh_id()
    local conn = deliver_async(srv, {id = second, to = "b@example.com", text = "second"})
    assert(util.wait_for(10, function() return sink_has("data-received 2") end), srv:log_text())
    assert.equal(1, connections_to(port), "the second attempt did not reuse the cached connection")
    assert.equal(1, stats(srv).sending)

    conn:close() -- the client leaves
    local gone = util.wait_for(5, function() return log_line(srv, "client went away; work cancelled") end)
    assert(gone, srv:log_text())
    local s = util.wait_for(5, function() local x = stats(srv); return x.sending == 0 and x end)
    assert(s, "the attempt was not cut\n" .. srv:log_text())
    assert(util.wait_for(5, function() return connections_to(port) == 0 end), "the cut connection is still open")
    assert.is_nil(sink_has("data-replied 2"), "the cut waited for the held reply")
    assert.equal(1, s.sent)
    assert.is_nil(log_line(srv, "mail sent", second))
    -- the worker goes on: the next attempt gets a connection of its own
    assert.equal(200, deliver(srv, {to = "c@example.com", text = "third"}, {timeout = 15}).status)
    local how, code = srv:stop()
    assert.equal("exited", how)
    assert.equal(0, code)
  end)

  it("lets a drain wait for the request waiting on its attempt, which gets its answer", function()
    local sink = mailbox.start_sink(port, dir .. "/sink", "--delay-data", "2", "--events", events)
    local srv
    finally(function()
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = smtp_url(port), MAIL_TLS = "off"})
    local id = fresh_id()
    local conn = deliver_async(srv, {id = id, to = "drain@example.com", text = "before you go"})
    assert(util.wait_for(10, function() return sink_has("data-received 1") end), srv:log_text())

    srv:kill(server.signal.SIGTERM)
    local reply = answer(conn)
    assert(reply, srv:log_text())
    assert.equal(200, reply.status)
    assert.same({delivered = true, id = id}, reply.json)
    local how, code = srv:wait_exit(20)
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.is_table(received(dir .. "/sink", id, 0))
    assert.is_nil(log_line(srv, "grace period over with requests in flight"))
    srv:stop()
  end)
end)

-- ---- shutdown and settings -------------------------------------------------

describe("host.mail shutdown and settings", function()
  local dir

  before_each(function() dir = util.tmpdir("mail") end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("does not hang on shutdown when the server never answers: the waiting request ends with the grace period",
     function()
    local port = util.free_port()
    local hole = assert(socket.bind("127.0.0.1", port)) -- listens, never accepts: no greeting
    local srv
    finally(function()
      srv:stop()
      hole:close()
    end)
    -- A worker whose grace runs out with a request in flight exits without
    -- closing its script generation (host/worker.c skips every shutdown), so
    -- LeakSanitizer would report what the Lua state still held (cjson's
    -- buffers). Leaks are not this test's subject; every other check stays.
    srv = start_server({MAIL_URL = smtp_url(port), MAIL_TLS = "off", MAIL_TIMEOUT_S = "60",
                        SHUTDOWN_GRACE_S = "1", ASAN_OPTIONS = "abort_on_error=0:detect_leaks=0"})
    local id = fresh_id()
    local conn = deliver_async(srv, {id = id, to = "a@example.com", text = "stuck"})
    assert(util.wait_for(5, function() return stats(srv).sending == 1 end), srv:log_text())
    local started = socket.gettime()
    srv:kill(server.signal.SIGTERM)
    local how, code = srv:wait_exit(20)
    local took = socket.gettime() - started
    assert.equal("exited", how)
    -- the worker's grace ran out with a request in flight: it exits 1 without
    -- its services' shutdown (host/worker.c), and the master reports it
    assert.equal(1, code)
    assert.is_true(took < 5, ("took %.1f s"):format(took))
    local line = log_line(srv, "grace period over with requests in flight")
    assert(line, srv:log_text())
    assert.equal(1, line.inflight)
    local reply, err = answer(conn)
    assert.is_nil(reply, "the request got an answer")
    assert.equal("closed", err)
    assert.is_nil(log_line(srv, "mail sent", id))
  end)

  it("insists on STARTTLS with MAIL_TLS=require", function()
    local port = util.free_port()
    local sink = mailbox.start_sink(port, dir .. "/sink") -- offers no STARTTLS
    local srv
    finally(function() -- busted keeps one finally per test
      if srv then srv:stop() end
      sink.stop()
    end)
    srv = start_server({MAIL_URL = smtp_url(port), MAIL_TLS = "require"})
    local id = fresh_id()
    local res = deliver(srv, {id = id, to = "a@example.com", text = "must not travel in clear"})
    assert.equal(422, res.status)
    assert.matches("STARTTLS", res.json.error.message, 1, true)
    -- the message is not at fault: the outbox tries again, up to MAIL_RETRY_MAX
    assert.is_false(res.json.permanent)
    assert.is_table(log_line(srv, "mail delivery attempt failed", id))
    assert.same({}, util.files(dir .. "/sink", "%.eml$"))
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
