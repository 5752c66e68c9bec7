-- GET /metrics against the real binary with two workers: a valid
-- exposition (a strict parser and promtool), counters that match the
-- traffic this spec sends whichever worker served it and whichever worker
-- answers the scrape, monotonic across a worker restart, and METRICS_PORT.
local server = require "support.server"
local prom = require "support.prometheus"
local api = require "support.api"
local util = require "support.util"
local http_client = require "support.http_client"

local wait_for = util.wait_for

local REQUESTS = "moonkeep_http_requests_total"
local DURATION = "moonkeep_http_request_duration_seconds"

-- The access lines' pid for each X-Request-Id that starts with `prefix`.
local function pids_by_request(srv, prefix)
  local pids = {}
  for _, line in ipairs(srv:log_lines()) do
    if line.msg == "request" and type(line.request_id) == "string" and line.request_id:sub(1, #prefix) == prefix then
      pids[line.request_id] = line.pid
    end
  end
  return pids
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function scrape(srv, port, id)
  local res = assert(http_client.request(port or srv.port, "GET", "/metrics",
    {headers = id and {["X-Request-Id"] = id} or nil}))
  assert.equal(200, res.status, res.body)
  return prom.parse(res.body), res
end

describe("GET /metrics with two workers", function()
  local srv, scripts

  setup(function()
    scripts = server.copy_scripts()
    srv = server.start({workers = 2, scripts = scripts, env = {DB_POOL_SIZE = "3", HASH_THREADS = "2"}})
  end)

  teardown(function()
    if srv then srv:stop() end
    if scripts then os.execute(("rm -rf %q"):format(scripts)) end
  end)

  it("is Prometheus text that a strict parser and promtool accept", function()
    local m, res = scrape(srv)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    for _, name in ipairs({REQUESTS, DURATION, "moonkeep_http_requests_in_flight",
                           "moonkeep_db_pool_connections_in_use",
                           "moonkeep_db_pool_waiting", "moonkeep_hash_jobs_queued", "moonkeep_mail_sent_total",
                           "moonkeep_mail_failed_total", "moonkeep_mail_sending", "moonkeep_script_generation",
                           "moonkeep_script_reload_failures_total", "moonkeep_worker_restarts_total",
                           "moonkeep_log_lines_total", "moonkeep_firehose_records_sent_total",
                           "moonkeep_firehose_records_dropped_total"}) do
      assert.is_table(m.families[name], name .. " is missing")
      assert.is_string(m.families[name].help, name .. " has no HELP")
    end
    assert.equal("counter", m.families[REQUESTS].type)
    assert.equal("histogram", m.families[DURATION].type)
    local ok, complaint = prom.promtool(res.body)
    assert.is_not_nil(ok, "promtool is not installed (vendor/debian-packages.txt lists prometheus)")
    assert.is_true(ok, complaint)
  end)

  it("counts requests at all: request.c reports each one (host_metrics_request_begin/_end)", function()
    assert.equal(200, srv:request("GET", "/healthz").status)
    local m = scrape(srv)
    assert.is_true(m:sum(REQUESTS) > 0, "no request counted: request.c must call host_metrics_request_begin "
      .. "when it dispatches and host_metrics_request_end when it replies (docs/observability.md)")
  end)

  it("counts requests by route pattern, method and status, summed over both workers", function()
    local before = scrape(srv)
    local tag = "mx" .. math.random(1e6, 9e6)
    local sent, i = {healthz = 0, user = 0, unmatched = 0, not_allowed = 0}, 0
    local function send(method, path, key, status)
      i = i + 1
      local res = srv:request(method, path, {headers = {["X-Request-Id"] = ("%s-%d"):format(tag, i)}})
      assert.equal(status, res.status, method .. " " .. path)
      sent[key] = sent[key] + 1
    end
    -- fresh connections, until both workers have served some of them
    repeat
      for _ = 1, 5 do send("GET", "/healthz", "healthz", 200) end
      send("GET", "/users/" .. math.random(1, 1e6), "user", 401)
      send("GET", "/no/such/" .. i, "unmatched", 404)
      send("POST", "/healthz", "not_allowed", 405)
      local workers = {}
      for _, pid in pairs(pids_by_request(srv, tag)) do workers[pid] = true end
    until count_keys(workers) == 2 or i > 400
    local pids = {}
    for _, pid in pairs(pids_by_request(srv, tag)) do pids[pid] = true end
    assert.equal(2, count_keys(pids), "both workers served requests")

    local after = scrape(srv)
    local function delta(labels)
      return after:sum(REQUESTS, labels) - before:sum(REQUESTS, labels)
    end
    assert.equal(sent.healthz, delta({route = "/healthz", method = "GET", status = "200"}))
    assert.equal(sent.not_allowed, delta({route = "/healthz", method = "POST", status = "405"}))
    assert.equal(sent.user, delta({route = "/users/{id}", method = "GET", status = "401"}))
    assert.equal(sent.unmatched, delta({route = "(unmatched)", method = "GET", status = "404"}))
    for _, s in ipairs(after:select(REQUESTS)) do
      assert.is_nil(s.labels.route:match("^/users/%d"), "a raw path became a label: " .. s.labels.route)
      assert.is_nil(s.labels.route:match("^/no/"), "a raw path became a label: " .. s.labels.route)
    end

    -- the histogram saw the same requests, and the scrape itself is in flight
    local labels = {route = "/healthz", method = "GET"}
    assert.equal(sent.healthz, after:value(DURATION .. "_count", labels) - before:value(DURATION .. "_count", labels))
    assert.equal(after:value(DURATION .. "_count", labels), after:value(DURATION .. "_bucket",
      {route = "/healthz", method = "GET", le = "+Inf"}))
    assert.is_true(after:value(DURATION .. "_sum", labels) > 0)
    assert.equal(1, after:value("moonkeep_http_requests_in_flight"))
  end)

  it("gives the same totals whichever worker answers the scrape", function()
    local tag = "scrape" .. math.random(1e6, 9e6)
    local seen, scrapes = {}, {}
    for n = 1, 60 do
      local id = ("%s-%d"):format(tag, n)
      scrapes[id] = scrape(srv, nil, id)
      for _, pid in pairs(pids_by_request(srv, tag)) do seen[pid] = true end
      if count_keys(seen) == 2 and n >= 4 then break end
    end
    assert.equal(2, count_keys(seen), "both workers answered a scrape")
    -- nothing but scrapes ran meanwhile: every other series agrees
    local reference
    for _, m in pairs(scrapes) do
      local totals = {}
      for _, s in ipairs(m:select(REQUESTS)) do
        if s.labels.route ~= "/metrics" then
          totals[s.labels.route .. " " .. s.labels.method .. " " .. s.labels.status] = s.value
        end
      end
      if reference then assert.same(reference, totals) else reference = totals end
    end
  end)

  it("reports the database and hashing pools of both workers", function()
    local m = assert(wait_for(10, function()
      local s = scrape(srv)
      return s:value("moonkeep_db_pool_connections_up") == 6 and s
    end), "every pooled connection comes up")
    assert.equal(6, m:value("moonkeep_db_pool_connections"))
    assert.equal(0, m:value("moonkeep_db_pool_waiting"))
    assert.equal(4, m:value("moonkeep_hash_threads"))
    assert.equal(0, m:value("moonkeep_hash_jobs_queued"))
    assert.equal(2, m:value("moonkeep_workers"))
    assert.equal(2, m:value("moonkeep_workers_running"))
  end)

  it("reports the argon2id memory the hashing threads keep between hashes", function()
    local region = 19456 * 1024 -- ARGON2_MEMLIMIT_KIB's default
    -- register, confirm, log in: a hash and a verify; the memory is given
    -- back after 2 s without hashing, so the scrape follows at once
    local m = assert(wait_for(20, function()
      api.admin_session(srv)
      local s = scrape(srv)
      return s:value("moonkeep_hash_memory_bytes") > 0 and s
    end), "a thread that hashed keeps its memory")
    local kept = m:value("moonkeep_hash_memory_bytes")
    assert.equal(0, kept % region, "whole regions only")
    -- one region per thread at most, however many hashes ran
    assert.is_true(kept <= 4 * region, ("%d bytes kept"):format(kept))
    assert(wait_for(20, function() return scrape(srv):value("moonkeep_hash_memory_bytes") == 0 end),
           "idle threads give their memory back")
  end)

  it("counts mail sent and the log lines by level", function()
    local before = scrape(srv)
    api.admin_session(srv)
    local m = assert(wait_for(5, function()
      local s = scrape(srv)
      return s:value("moonkeep_mail_sent_total") > before:value("moonkeep_mail_sent_total") and s
    end), "the confirmation mail is counted")
    assert.equal(0, m:value("moonkeep_mail_failed_total"))
    -- every info line written before the scrape is counted, and nothing more than was written after it
    local counted = m:value("moonkeep_log_lines_total", {level = "info"})
    local written = 0
    for _, line in ipairs(srv:log_lines()) do
      if line.level == "info" then written = written + 1 end
    end
    assert.is_true(counted > 0 and counted <= written, ("%d counted, %d written"):format(counted, written))
    assert.is_true(m:value("moonkeep_log_lines_total", {level = "debug"}) > 0, "LOG_LEVEL=debug lines are counted")
  end)

  it("keeps every counter when a worker dies and is restarted", function()
    local before = scrape(srv)
    local victim = srv:worker_pids()[1]
    server.signal.kill(victim, server.signal.SIGKILL)
    local after = assert(wait_for(15, function()
      local s = scrape(srv)
      return s:value("moonkeep_workers_running") == 2 and s:value("moonkeep_worker_restarts_total") == 1 and s
    end), "the worker is restarted and counted")
    for _, s in ipairs(before:select(REQUESTS)) do
      local now = after:value(REQUESTS, s.labels)
      assert.is_true(now ~= nil and now >= s.value, "counter went down: " .. s.name .. " " .. tostring(s.labels.route))
    end
    for _, name in ipairs({"moonkeep_mail_sent_total", "moonkeep_log_lines_total"}) do
      assert.is_true(after:sum(name) >= before:sum(name), name .. " went down")
    end
    -- and the new worker keeps adding to the same totals
    local healthz = {route = "/healthz", method = "GET", status = "200"}
    for _ = 1, 20 do assert.equal(200, srv:request("GET", "/healthz").status) end
    assert.equal(after:value(REQUESTS, healthz) + 20, scrape(srv):value(REQUESTS, healthz))
  end)

  it("counts script reloads and refused script changes", function()
    local before = scrape(srv)
    local generation = before:value("moonkeep_script_generation")
    local app = scripts .. "/app.lua"
    local f = assert(io.open(app))
    local good = f:read("*a")
    f:close()
    server.write_file(app, good .. "\nthis is not lua\n")
    local m = assert(wait_for(10, function()
      local s = scrape(srv)
      local failures = "moonkeep_script_reload_failures_total"
      return s:value(failures) == before:value(failures) + 1 and s
    end), "the refused change is counted")
    assert.equal(generation, m:value("moonkeep_script_generation"))
    server.write_file(app, good .. "\n-- a harmless change\n")
    m = assert(wait_for(10, function()
      local s = scrape(srv)
      return s:value("moonkeep_script_generation") == generation + 1 and s
    end), "the new generation is published")
    assert.equal(before:value("moonkeep_script_reloads_total") + 1, m:value("moonkeep_script_reloads_total"))
  end)
end)

describe("METRICS_PORT", function()
  local srv, metrics_port

  setup(function()
    metrics_port = util.free_port()
    srv = server.start({workers = 2, env = {METRICS_PORT = tostring(metrics_port)}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("serves /metrics on its own port, and the main port answers 404", function()
    local res = srv:request("GET", "/metrics")
    assert.equal(404, res.status)
    assert.equal("not_found", res.json.error.code)
    local m
    m, res = scrape(srv, metrics_port)
    assert.is_true((prom.promtool(res.body)))
    assert.equal(1, m:value(REQUESTS, {route = "/metrics", method = "GET", status = "404"}))
    assert.equal(0, m:value("moonkeep_http_requests_in_flight"), "a scrape on its own port is no API request")
  end)

  it("answers 404 to any other path on the metrics port", function()
    local res = http_client.request(metrics_port, "GET", "/healthz")
    assert.equal(404, res.status)
  end)

  it("listens on loopback only, unless METRICS_HOST says otherwise", function()
    local logged
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "listening" then logged = line end
    end
    assert.equal(metrics_port, logged.metrics_port)
    local f = io.popen("ss -Hltn 'sport = :" .. metrics_port .. "' 2>/dev/null")
    local listing = f:read("*a")
    f:close()
    if listing ~= "" then assert.matches("127%.0%.0%.1:" .. metrics_port, listing) end
  end)
end)
