-- Log shipping to Firehose against the real binary and a local Firehose
-- (tools/firehose-endpoint.py, run by Debian's /usr/bin/python3, which
-- checks every request's SigV4 signature with botocore's signer and the
-- service limits, and records the decoded records).
--
-- The yardstick is stdout: every line a worker writes between "firehose
-- shipping" (the first line it ships) and "firehose stopped" (the first it
-- does not) must reach the endpoint exactly once, unless it was counted as
-- dropped.
package.path = "spec/?.lua;" .. package.path -- support.* also without a .busted
local server = require "support.server"
local client = require "support.http_client"
local util = require "support.util"
local socket = require "socket"
local cjson = require "cjson.safe"

local PYTHON = "/usr/bin/python3" -- Debian's, which has python3-botocore
local ENDPOINT = "tools/firehose-endpoint.py"
local STREAM = "moonkeep-test"
local REGION = "eu-west-1"
local KEY, SECRET = "AKIDFIREHOSESPEC", "firehose-spec-secret-key/0123456789+abc"

-- ---- helpers ----------------------------------------------------------------

local function jsonl(path)
  local out = {}
  for line in (util.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = assert(cjson.decode(line)) end
  return out
end

-- What a spec started, stopped by after_each even when the spec failed.
local running = {endpoints = {}, servers = {}}

-- The local Firehose on 127.0.0.1:port, writing into dir. `args`: extra
-- command-line options.
local function start_endpoint(port, dir, args)
  local argv = {ENDPOINT, tostring(port), dir, "--region", REGION, "--stream", STREAM}
  for _, a in ipairs(args or {"--key", KEY .. ":" .. SECRET}) do argv[#argv + 1] = a end
  local log = dir .. "/endpoint.log"
  local pid = util.spawn(PYTHON, argv, log, true)
  local up = util.wait_for(15, function()
    local res = client.request(port, "GET", "/_state", {timeout = 1})
    return res and res.status == 200
  end)
  assert(up, "firehose-endpoint did not start: " .. (util.read_file(log) or ""))
  local ep = {port = port, dir = dir}
  function ep.stop()
    if not pid then return end
    util.stop(pid)
    pid = nil
  end
  table.insert(running.endpoints, ep)
  function ep.control(mode, count, every)
    local res = client.request(port, "POST", "/_control", {body = {mode = mode, count = count, every = every}})
    assert(res and res.status == 200, "control refused")
  end
  function ep.records()
    local out = {}
    for i, r in ipairs(jsonl(dir .. "/records.jsonl")) do
      out[i] = r.data
    end
    return out
  end
  function ep.requests() return jsonl(dir .. "/requests.jsonl") end
  function ep.credential_requests() return jsonl(dir .. "/credentials.jsonl") end
  return ep
end

-- Test routes: a script log line, and one over Firehose's record limit.
local ROUTES = [[
local http = require "lib.http"
local log = require "host.log"
return {
  {"GET", "/fh/log", function(req)
    log.info("firehose spec line", {path = req.path})
    return http.ok({})
  end},
  {"GET", "/fh/big", function()
    log.info("firehose spec big line", {blob = string.rep("x", 1100000)})
    return http.ok({})
  end},
}
]]

local scripts_dir
local function scripts()
  scripts_dir = scripts_dir or server.scripts_with("fh_test", ROUTES)
  return scripts_dir
end

local function start_server(ep_port, env, workers)
  local e = {
    FIREHOSE_STREAM = STREAM, AWS_REGION = REGION,
    FIREHOSE_ENDPOINT = ("http://127.0.0.1:%d"):format(ep_port),
    AWS_ACCESS_KEY_ID = KEY, AWS_SECRET_ACCESS_KEY = SECRET, AWS_SESSION_TOKEN = false,
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = false, AWS_CONTAINER_CREDENTIALS_FULL_URI = false,
    AWS_DEFAULT_REGION = false, FIREHOSE_FLUSH_MS = "200", FIREHOSE_BACKOFF_MAX_MS = "500",
  }
  for k, v in pairs(env or {}) do e[k] = v end
  if not os.getenv("DATABASE_URL") then e.MIGRATE_ON_START = "false" end
  workers = workers or 1
  local srv = server.start({scripts = scripts(), workers = workers, env = e})
  table.insert(running.servers, srv)
  -- every worker up (a SIGTERM before a worker has its handlers kills it)
  assert(util.wait_for(20, function()
    local ready = {}
    local n = 0
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "worker ready" and not ready[line.pid] then ready[line.pid] = true; n = n + 1 end
    end
    return n >= workers
  end), "the workers did not all start:\n" .. srv:log_text())
  return srv
end

-- Requests that all must answer 200: `n` of /healthz and `n` of /fh/log.
local function journey(srv, n)
  for i = 1, n do
    local res = srv:request("GET", "/healthz", {headers = {["X-Request-Id"] = "fh-health-" .. i}})
    assert.equal(200, res and res.status, "request " .. i .. " failed")
    res = srv:request("GET", "/fh/log", {headers = {["X-Request-Id"] = "fh-log-" .. i}})
    assert.equal(200, res and res.status, "script request " .. i .. " failed")
  end
end

local function stop_cleanly(srv)
  local how, code = srv:stop()
  assert.equal("exited", how)
  assert.equal(0, code, srv:log_text():sub(-3000))
end

-- What each worker wrote to stdout while it shipped: pid -> list of lines
-- (each with its newline, as shipped), and pid -> its "firehose stopped" line.
local function shipped_lines(srv)
  local by_pid, stopped, state = {}, {}, {}
  for text in srv:log_text():gmatch("[^\n]+") do
    local line = cjson.decode(text)
    if line and line.role == "worker" then
      local pid = line.pid
      if line.msg == "firehose shipping" then state[pid] = true; by_pid[pid] = {} end
      if line.msg == "firehose stopped" then state[pid] = false; stopped[pid] = line end
      if state[pid] then table.insert(by_pid[pid], text .. "\n") end
    end
  end
  return by_pid, stopped
end

-- The records the endpoint accepted, grouped by the pid inside them.
local function received_by_pid(ep)
  local by_pid = {}
  for _, data in ipairs(ep.records()) do
    local line = assert(cjson.decode(data), "a record is not a JSON line: " .. data:sub(1, 200))
    by_pid[line.pid] = by_pid[line.pid] or {}
    table.insert(by_pid[line.pid], data)
  end
  return by_pid
end

-- How many of `lines` have this msg (and a request id starting with `id_prefix`).
local function count_msg(lines, msg, id_prefix)
  local n = 0
  for _, text in ipairs(lines) do
    local line = cjson.decode(text)
    if line.msg == msg and (id_prefix == nil or tostring(line.request_id):sub(1, #id_prefix) == id_prefix) then
      n = n + 1
    end
  end
  return n
end

-- Every request the endpoint saw was well signed and within the limits.
local function assert_all_verified(ep)
  for _, r in ipairs(ep.requests()) do
    assert.is_truthy(r.status == 200 or (r.error and r.error:find("(asked)", 1, true)),
      "the endpoint refused a request: " .. tostring(r.error))
  end
end

-- stdout and the endpoint agree exactly, line for line, per worker.
local function assert_exactly_once_in_order(srv, ep, nworkers)
  local lines, stopped = shipped_lines(srv)
  local got = received_by_pid(ep)
  local pids = 0
  for pid, expected in pairs(lines) do
    pids = pids + 1
    assert.is_table(stopped[pid], "no 'firehose stopped' line for " .. pid)
    assert.equal(0, stopped[pid].dropped)
    assert.equal(0, stopped[pid].unsent)
    assert.equal(#expected, stopped[pid].sent)
    assert.same(expected, got[pid] or {})
  end
  assert.equal(nworkers, pids)
  for pid in pairs(got) do assert.is_table(lines[pid], "records from an unknown pid " .. pid) end
end

-- ---- specs --------------------------------------------------------------------

describe("shipping logs to Firehose", function()
  local dirs = {}
  local function dir()
    local d = util.tmpdir("firehose")
    dirs[#dirs + 1] = d
    return d
  end

  after_each(function()
    for _, srv in ipairs(running.servers) do
      if not srv.exited then pcall(srv.stop, srv) end
    end
    for _, ep in ipairs(running.endpoints) do ep.stop() end
    running.servers, running.endpoints = {}, {}
  end)

  teardown(function()
    for _, d in ipairs(dirs) do os.execute("rm -rf " .. d) end
    if scripts_dir then os.execute("rm -rf " .. scripts_dir) end
  end)

  it("ships every line of a journey exactly once, in order per worker, signed", function()
    local ep = start_endpoint(util.free_port(), dir())
    local srv = start_server(ep.port, nil, 2)
    journey(srv, 30)
    stop_cleanly(srv)
    ep.stop()
    assert_all_verified(ep)
    local lines = shipped_lines(srv)
    local requests, scripted = 0, 0
    for _, list in pairs(lines) do
      requests = requests + count_msg(list, "request", "fh-")
      scripted = scripted + count_msg(list, "firehose spec line", "fh-log-")
    end
    assert.equal(60, requests)
    assert.equal(30, scripted)
    assert_exactly_once_in_order(srv, ep, 2)
    for _, r in ipairs(ep.requests()) do
      assert.equal(KEY, r.access_key)
      assert.is_false(r.token)
      assert.equal("content-type;host;x-amz-date;x-amz-target", r.signed_headers)
    end
  end)

  it("retries throttling and 500s, losing and repeating nothing", function()
    local ep = start_endpoint(util.free_port(), dir())
    ep.control("throttle", 3)
    local srv = start_server(ep.port)
    journey(srv, 10)
    assert.truthy(util.wait_for(20, function()
      local n = 0
      for _, r in ipairs(ep.requests()) do if r.status == 200 then n = n + 1 end end
      return n > 0
    end), "nothing got through after the throttling")
    ep.control("error500", 3)
    journey(srv, 10)
    assert.truthy(util.wait_for(20, function()
      local s = client.request(ep.port, "GET", "/_state").json
      return s.left == 0
    end))
    stop_cleanly(srv)
    ep.stop()
    local throttled, failed500 = 0, 0
    for _, r in ipairs(ep.requests()) do
      if r.status == 400 then throttled = throttled + 1 end
      if r.status == 500 then failed500 = failed500 + 1 end
    end
    assert.equal(3, throttled)
    assert.equal(3, failed500)
    assert_all_verified(ep)
    assert_exactly_once_in_order(srv, ep, 1)
    local _, stopped = shipped_lines(srv)
    for _, s in pairs(stopped) do assert.is_true(s.retried > 0) end
    assert.truthy(srv:log_text():find("firehose delivery failing; retrying", 1, true))
    assert.truthy(srv:log_text():find("firehose delivery recovered", 1, true))
  end)

  it("resends only the failed entries of a partial failure: every line exactly once", function()
    local ep = start_endpoint(util.free_port(), dir())
    ep.control("partial", 4, 3)
    local srv = start_server(ep.port)
    journey(srv, 15)
    stop_cleanly(srv)
    ep.stop()
    assert_all_verified(ep)
    local lines = shipped_lines(srv)
    local got = received_by_pid(ep)
    local partial_calls, sent_entries, failed_entries = 0, 0, 0
    for _, r in ipairs(ep.requests()) do
      sent_entries = sent_entries + r.records
      failed_entries = failed_entries + r.failed
      if r.failed > 0 then partial_calls = partial_calls + 1 end
    end
    assert.equal(4, partial_calls)
    for pid, expected in pairs(lines) do
      -- the same lines, each once (a resent entry arrives after the ones
      -- that followed it in its batch)
      local want, have = {}, {}
      for _, l in ipairs(expected) do want[l] = (want[l] or 0) + 1 end
      for _, l in ipairs(got[pid] or {}) do have[l] = (have[l] or 0) + 1 end
      assert.same(want, have)
      -- every entry sent was either accepted once or failed and sent again
      assert.equal(#expected + failed_entries, sent_entries)
    end
  end)

  it("gives a batch up after Firehose refused it three times (no such stream), and goes on", function()
    local ep = start_endpoint(util.free_port(), dir())
    local srv = start_server(ep.port, {FIREHOSE_STREAM = "no-such-stream"})
    journey(srv, 3)
    local refused = util.wait_for(15, function()
      return srv:log_line("firehose refused a batch; its records are dropped")
    end)
    assert.is_table(refused, "no batch was given up")
    assert.equal(400, refused.status)
    assert.truthy(refused.error:find("ResourceNotFoundException", 1, true))
    journey(srv, 2) -- the next lines are tried too, not stuck behind the first batch
    assert.truthy(util.wait_for(15, function() return #ep.requests() >= 6 end))
    stop_cleanly(srv)
    ep.stop()
    for _, r in ipairs(ep.requests()) do
      assert.equal(400, r.status)
      assert.truthy(r.error:find("ResourceNotFoundException", 1, true))
      assert.equal(KEY, r.access_key) -- well signed: refused for the stream only
    end
    local _, stopped = shipped_lines(srv)
    for _, s in pairs(stopped) do
      assert.equal(0, s.sent)
      assert.is_true(s.failed >= refused.records)
    end
    assert.equal(0, #ep.records())
  end)

  it("counts what it drops while Firehose is down, and the API keeps answering", function()
    local port = util.free_port()
    local d = dir()
    local srv = start_server(port, {FIREHOSE_BUFFER_MAX_RECORDS = "20", FIREHOSE_DROP_REPORT_S = "1"})
    journey(srv, 50) -- asserts each of the 100 requests answered 200
    local report = util.wait_for(10, function() return srv:log_line("firehose records dropped") end)
    assert.is_table(report, "no drop report")
    assert.is_true(report.dropped > 0)
    local ep = start_endpoint(port, d) -- Firehose is back
    assert.truthy(util.wait_for(20, function() return #ep.records() >= 20 end))
    stop_cleanly(srv)
    ep.stop()
    assert_all_verified(ep)
    local lines, stopped = shipped_lines(srv)
    local got = received_by_pid(ep)
    for pid, expected in pairs(lines) do
      local s = stopped[pid]
      local received = got[pid] or {}
      assert.equal(0, s.unsent)
      assert.is_true(s.dropped >= 60, "dropped " .. s.dropped)
      assert.is_true(s.dropped >= report.dropped_total)
      -- what was lost is exactly what was counted
      assert.equal(#expected - #received, s.dropped)
      assert.equal(#received, s.sent)
      -- and what arrived, arrived once, in order: a subsequence of stdout
      local i = 1
      for _, l in ipairs(expected) do
        if received[i] == l then i = i + 1 end
      end
      assert.equal(#received + 1, i, "the records are not stdout's lines in order")
    end
  end)

  it("flushes what is buffered on SIGTERM before the worker exits", function()
    local ep = start_endpoint(util.free_port(), dir())
    local srv = start_server(ep.port, {FIREHOSE_FLUSH_MS = "60000"})
    journey(srv, 10)
    socket.sleep(0.5)
    assert.equal(0, #ep.records(), "sent before the flush interval")
    stop_cleanly(srv)
    ep.stop()
    assert_all_verified(ep)
    assert.truthy(srv:log_text():find("firehose: flushing before exit", 1, true))
    assert_exactly_once_in_order(srv, ep, 1)
  end)

  it("gives up at FIREHOSE_FLUSH_ON_EXIT_S when Firehose hangs, and says what it could not send", function()
    -- a listener that never accepts: connections complete, nothing answers
    local port = util.free_port()
    local hang = assert(socket.bind("127.0.0.1", port))
    local srv = start_server(port, {FIREHOSE_FLUSH_ON_EXIT_S = "1", FIREHOSE_TIMEOUT_S = "60"})
    journey(srv, 3)
    socket.sleep(0.5) -- the first batch is in flight
    local t0 = socket.gettime()
    stop_cleanly(srv)
    hang:close()
    assert.is_true(socket.gettime() - t0 < 8, "the exit flush was not bounded")
    local _, stopped = shipped_lines(srv)
    for _, s in pairs(stopped) do
      assert.equal(0, s.sent)
      assert.is_true(s.unsent > 6, "unsent " .. s.unsent)
      assert.equal("warn", s.level)
    end
  end)

  it("fetches container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI), signs with them, refreshes them", function()
    local port = util.free_port()
    local ckey, csecret, ctoken = "ASIACONTAINERSPEC", "container-secret/abc+def", "container-session-token-xyz"
    local ep = start_endpoint(port, dir(), {
      "--serve-credentials", ckey .. ":" .. csecret .. ":" .. ctoken,
      "--credentials-ttl", "4", "--credentials-auth", "spec-auth-token"})
    local srv = start_server(port, {
      AWS_ACCESS_KEY_ID = false, AWS_SECRET_ACCESS_KEY = false,
      AWS_CONTAINER_CREDENTIALS_FULL_URI = ("http://127.0.0.1:%d/credentials"):format(port),
      AWS_CONTAINER_AUTHORIZATION_TOKEN = "spec-auth-token"})
    journey(srv, 5)
    -- valid for 4 s: fetched again about halfway through
    assert.truthy(util.wait_for(10, function() return #ep.credential_requests() >= 3 end), "not refreshed")
    journey(srv, 5)
    stop_cleanly(srv)
    ep.stop()
    for _, c in ipairs(ep.credential_requests()) do assert.equal("spec-auth-token", c.authorization) end
    assert.is_true(#ep.requests() > 0)
    for _, r in ipairs(ep.requests()) do
      assert.equal(200, r.status, r.error)
      assert.equal(ckey, r.access_key)
      assert.is_true(r.token)
      assert.equal("content-type;host;x-amz-date;x-amz-security-token;x-amz-target", r.signed_headers)
    end
    assert_exactly_once_in_order(srv, ep, 1)
    -- no secret in the log
    local text = srv:log_text()
    assert.is_nil(text:find(csecret, 1, true))
    assert.is_nil(text:find(ctoken, 1, true))
  end)

  it("cuts a line over the 1,000 KiB record limit into a valid line that says so", function()
    local ep = start_endpoint(util.free_port(), dir())
    local srv = start_server(ep.port)
    local res = srv:request("GET", "/fh/big")
    assert.equal(200, res.status)
    stop_cleanly(srv)
    ep.stop()
    assert_all_verified(ep)
    local original
    for text in srv:log_text():gmatch("[^\n]+") do
      if text:find('"msg":"firehose spec big line"', 1, true) then original = text .. "\n" end
    end
    assert.is_string(original)
    assert.is_true(#original > 1024000)
    local cut
    for _, data in ipairs(ep.records()) do
      assert.is_true(#data <= 1024000)
      local line = assert(cjson.decode(data))
      if line.msg == "log line over the Firehose record limit; cut" then cut = line end
    end
    assert.is_table(cut, "the cut line did not arrive")
    assert.equal(#original, cut.original_bytes)
    assert.equal("info", cut.level)
    assert.equal(original:sub(1, #cut.head), cut.head)
    assert.is_true(#cut.head > 400000)
  end)
end)
