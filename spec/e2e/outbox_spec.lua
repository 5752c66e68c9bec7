-- The mail outbox (lib/outbox.lua, migrations/0005_mail_outbox.sql) and the
-- retention sweeper (lib/retention.lua) against the real binary, PostgreSQL
-- and a real SMTP server (tools/smtp-sink.py): a mail outlives every process
-- of the server, is sent exactly once by any number of replicas, is retried
-- and given up as configured; rows past their retention go, live rows stay.
local server = require "support.server"
local mailbox = require "support.mailbox"
local util = require "support.util"
local signal = require "posix.signal"

local sql = util.sql

local function unique(prefix)
  return ("%s%d%d"):format(prefix, os.time() % 100000, math.random(1e5, 1e6 - 1))
end

local PASSWORD = "correct horse battery staple"

-- Message-ID left part -> how many of the sink's messages to addresses
-- starting with `prefix` carry it.
local function message_ids(dir, prefix)
  local seen = {}
  for _, name in ipairs(util.files(dir, "%.eml$")) do
    local raw = util.read_file(dir .. "/" .. name) or ""
    local id = raw:match("\r\n[Mm]essage%-[Ii][Dd]: <([^@>]+)@")
    local to = raw:match("\r\nTo: ([^\r]*)") or ""
    if id and to:sub(1, #prefix) == prefix then seen[id] = (seen[id] or 0) + 1 end
  end
  return seen
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Fast retries and no giving up: the specs bring the mail server up late.
-- Short leases: a mail a killed worker had claimed waits for its lease.
local function mail_env(port, extra)
  local env = {MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off", MAIL_POLL_S = "1",
               MAIL_BACKOFF_MAX_S = "1", MAIL_RETRY_MAX = "100", MAIL_TIMEOUT_S = "5", MAIL_LEASE_S = "10"}
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

describe("the mail outbox", function()
  local servers, sinks = {}, {}

  local function start(opts)
    local srv = server.start(opts)
    servers[#servers + 1] = srv
    return srv
  end

  after_each(function()
    for _, srv in ipairs(servers) do srv:stop() end
    for _, sink in ipairs(sinks) do sink.stop() end
    servers, sinks = {}, {}
  end)

  local function register(srv, tag)
    local email = unique(tag) .. "@example.com"
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = unique(tag), password = PASSWORD}})
    assert.equal(201, res.status, res.body)
    return email
  end

  it("delivers every mail exactly once after SMTP was down and every process was killed", function()
    local port = util.free_port()
    local prefix = unique("crash")
    local group = unique("crashgroup")
    local srv = start({workers = 2, env = mail_env(port, {MAIL_GROUP = group})})
    local emails = {}
    for i = 1, 50 do emails[i] = register(srv, prefix .. "x" .. i .. "x") end
    local due = sql(("SELECT count(id) FROM mail_outbox WHERE status = 'due' AND to_addr LIKE '%s%%'"):format(prefix))
    assert.equal("50", due)
    -- every worker, then the master (stopped first, so it cannot fork new ones)
    signal.kill(srv.pid, signal.SIGSTOP)
    for _, pid in ipairs(srv:worker_pids()) do signal.kill(pid, signal.SIGKILL) end
    signal.kill(srv.pid, signal.SIGKILL)
    srv:wait_exit(10)
    srv.exited = true

    local again = start({workers = 2, env = mail_env(port, {MAIL_GROUP = group})})
    local dir = util.tmpdir("crash-mail")
    sinks[#sinks + 1] = mailbox.start_sink(port, dir)
    local ids = util.wait_for(60, function()
      local seen = message_ids(dir, prefix)
      if count(seen) >= 50 then return seen end
    end, 0.2)
    assert.is_table(ids, "not every mail arrived")
    util.sleep(2.5) -- two more rounds of every worker: nothing is sent twice
    ids = message_ids(dir, prefix)
    assert.equal(50, count(ids))
    for id, n in pairs(ids) do assert.equal(1, n, "message " .. id .. " arrived " .. n .. " times") end
    assert.equal("50", sql(("SELECT count(id) FROM mail_outbox WHERE status = 'sent' AND token IS NULL"
      .. " AND to_addr LIKE '%s%%'"):format(prefix)))
    for i = 1, 50, 7 do
      local raw = assert(mailbox.message_to(dir, emails[i], 5))
      local link, token = mailbox.link(raw, again.env.PUBLIC_URL .. "/auth/confirm")
      assert.is_string(token, "no confirmation link to the restarted server in the mail")
      local res = again:request("GET", link:sub(#again.env.PUBLIC_URL + 1))
      assert.equal(200, res.status, res.body)
      assert.is_true(res.json.admin.confirmed)
    end
  end)

  it("sends each mail once when two replicas share the database", function()
    local port = util.free_port()
    local dir = util.tmpdir("replica-mail")
    sinks[#sinks + 1] = mailbox.start_sink(port, dir)
    local prefix = unique("twin")
    local group = unique("twingroup")
    local a = start({workers = 2, env = mail_env(port, {MAIL_GROUP = group})})
    local b = start({workers = 2, env = mail_env(port, {MAIL_GROUP = group})})
    local emails = {}
    for i = 1, 20 do emails[i] = register(i % 2 == 0 and a or b, prefix .. "x" .. i .. "x") end
    -- asked for by address too
    for i = 1, 20, 2 do
      local res = a:request("POST", "/auth/confirm/resend", {body = {email = emails[i]}})
      assert.equal(202, res.status)
    end
    assert.truthy(util.wait_for(30, function()
      return sql(("SELECT count(id) FROM mail_outbox WHERE status = 'due' AND to_addr LIKE '%s%%'"):format(prefix)) == "0"
    end, 0.2), "the outbox did not empty")
    util.sleep(1.5)
    local ids = message_ids(dir, prefix)
    assert.equal(30, count(ids))
    for id, n in pairs(ids) do assert.equal(1, n, "message " .. id .. " arrived " .. n .. " times") end
    -- every mail was sent by one attempt of one replica
    local sent_by = {}
    for _, srv in ipairs({a, b}) do
      for _, line in ipairs(srv:log_lines()) do
        if line.msg == "mail sent" and ids[line.mail_id] then sent_by[srv] = (sent_by[srv] or 0) + 1 end
      end
    end
    assert.equal(30, (sent_by[a] or 0) + (sent_by[b] or 0))
  end)

  it("gives a mail up after MAIL_RETRY_MAX attempts and keeps the last error", function()
    local port = util.free_port() -- nothing listens there
    local srv = start({workers = 1, env = mail_env(port, {MAIL_RETRY_MAX = "3"})})
    local email = register(srv, "giveup")
    local row = util.wait_for(30, function()
      local r = sql(("SELECT status, attempts, token IS NULL, last_error FROM mail_outbox WHERE to_addr = '%s'")
        :format(email))
      if r:match("^failed") then return r end
    end, 0.2)
    assert.is_string(row, "the mail was not given up")
    local status, attempts, scrubbed, last_error = row:match("^(%w+)|(%d+)|(%w)|(.*)$")
    assert.equal("failed", status)
    assert.equal("3", attempts)
    assert.equal("t", scrubbed)
    assert.matches("onnect", last_error) -- curl's "Couldn't connect to server"
    assert.is_table(srv:log_line("mail given up"))
    local res = srv:request("GET", "/metrics")
    assert.matches("moonkeep_mail_given_up_total 1", res.body, 1, true)
    assert.matches("moonkeep_mail_outbox_depth", res.body, 1, true)
  end)

  it("writes the mail of the embedded default to the outbox folder, from the table", function()
    local srv = start({workers = 1, env = {MAIL_URL = "", MAIL_POLL_S = "1"}})
    local email = register(srv, "folder")
    local raw = mailbox.message_to(srv.outbox, email, 10)
    assert.is_string(raw, "no .eml in the outbox folder")
    local id = sql(("SELECT message_id FROM mail_outbox WHERE to_addr = '%s' AND status = 'sent'"):format(email))
    assert.matches("Message%-ID: <" .. id .. "@", raw)
  end)
end)

describe("the retention sweeper", function()
  local srv

  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  -- rows of every swept table, some past retention and some live, for an
  -- admin made here; returns its id
  local function seed(tag)
    local admin = sql(("INSERT INTO admins (email, name, password_hash) VALUES ('%s@example.com', '%s', 'x')"
      .. " RETURNING id"):format(tag, tag))
    sql(([[
      INSERT INTO sessions (admin_id, refresh_jti, expires_at, revoked_at) VALUES
        (%s, '%s-old', now() - interval '9 days', NULL),
        (%s, '%s-revoked', now() + interval '9 days', now() - interval '9 days'),
        (%s, '%s-live', now() + interval '1 day', NULL),
        (%s, '%s-recent', now() - interval '1 hour', NULL);
      INSERT INTO one_time_tokens (kind, token_hash, admin_id, email, expires_at, used_at) VALUES
        ('confirm', '%s-t1', %s, 'x', now() - interval '2 days', NULL),
        ('reset', '%s-t2', %s, 'x', now() + interval '1 hour', now() - interval '2 days'),
        ('reset', '%s-t3', %s, 'x', now() + interval '1 hour', NULL);
      INSERT INTO rate_limits (kind, key, window_start, count) VALUES
        ('mail_reset', '%s-old', now() - interval '2 days', 1),
        ('mail_reset', '%s-live', now(), 1);
      INSERT INTO mail_outbox (kind, to_addr, name, token, ttl_s, status, done_at, mail_group) VALUES
        ('confirm', '%s-old@example.com', 'n', NULL, 60, 'sent', now() - interval '8 days', 'seeded'),
        ('confirm', '%s-new@example.com', 'n', NULL, 60, 'sent', now(), 'seeded'),
        ('confirm', '%s-due@example.com', 'n', 't', 60, 'due', NULL, 'seeded');
    ]]):gsub("%%s", "%%s"):format(admin, tag, admin, tag, admin, tag, admin, tag, tag, admin, tag, admin, tag, admin,
                                   tag, tag, tag, tag, tag))
    return admin
  end

  local function left(admin, tag)
    return sql(("SELECT (SELECT string_agg(refresh_jti, ',' ORDER BY refresh_jti) FROM sessions WHERE admin_id = %s)"
      .. " || ' ' || (SELECT string_agg(token_hash, ',' ORDER BY token_hash) FROM one_time_tokens WHERE admin_id = %s)"
      .. " || ' ' || (SELECT string_agg(key, ',' ORDER BY key) FROM rate_limits WHERE key LIKE '%s-%%')"
      .. " || ' ' || (SELECT string_agg(to_addr, ',' ORDER BY to_addr) FROM mail_outbox WHERE to_addr LIKE '%s-%%')")
      :format(admin, admin, tag, tag))
  end

  local function expected(tag)
    return ("%s-live,%s-recent %s-t3 %s-live %s-due@example.com,%s-new@example.com")
      :format(tag, tag, tag, tag, tag, tag)
  end

  it("deletes rows past retention within one sweep, in small batches, and leaves live rows", function()
    local tag = unique("sweep")
    local admin = seed(tag)
    srv = server.start({workers = 2, env = {RETENTION_SWEEP_S = "1", RETENTION_BATCH = "1"}})
    assert.truthy(util.wait_for(20, function() return left(admin, tag) == expected(tag) end, 0.2),
                  "left: " .. left(admin, tag))
    util.sleep(2.5)
    assert.equal(expected(tag), left(admin, tag))
    local res = srv:request("GET", "/metrics")
    assert.matches('moonkeep_retention_deleted_rows_total{table="sessions"}', res.body, 1, true)
    assert.matches('moonkeep_retention_deleted_rows_total{table="mail_outbox"}', res.body, 1, true)
  end)

  it("lets two replicas sweep at once without conflicts", function()
    local tag = unique("twins")
    local admins = {}
    for i = 1, 5 do admins[i] = seed(tag .. "x" .. i) end
    srv = server.start({workers = 2, env = {RETENTION_SWEEP_S = "1", RETENTION_BATCH = "2"}})
    local other = server.start({workers = 2, env = {RETENTION_SWEEP_S = "1", RETENTION_BATCH = "2"}})
    local ok = util.wait_for(20, function()
      for i = 1, 5 do
        if left(admins[i], tag .. "x" .. i) ~= expected(tag .. "x" .. i) then return false end
      end
      return true
    end, 0.2)
    other:stop()
    assert.truthy(ok, "rows past retention are left")
    for _, s in ipairs({srv, other}) do
      for _, line in ipairs(s:log_lines()) do
        assert.is_nil(line.level == "error" and line.msg or nil, "an error was logged: " .. tostring(line.msg))
      end
    end
  end)
end)
