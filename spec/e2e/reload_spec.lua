-- Hot reload against the real binary: script changes under load, refused
-- generations, late workers, and 1,000 reloads without leaks.
local server = require "support.server"
local api = require "support.api"
local socket = require "socket"

local SANITIZED = os.getenv("MOONKEEP_SANITIZED") == "1"
local ROUNDS = tonumber(os.getenv("RELOAD_ROUNDS") or "") or 1000

-- routes/version.lua answers {a = A, b = B}: A from itself, B from
-- lib/version_b.lua. A generation mixing old and new files would answer
-- a ~= b.
local function version_route(a)
  return ([[
    local b = require "lib.version_b"
    return {{"GET", "/version", function() return {status = 200, body = {a = %d, b = b.value}} end}}
  ]]):format(a)
end

local function write_version(dir, v)
  server.write_file(dir .. "/lib/version_b.lua", ("return {value = %d}\n"):format(v))
  server.write_route_module(dir, "version", version_route(v))
end

-- Asks fresh connections until `n` answers in a row come from version v.
local function wait_for_version(srv, v, n, seconds)
  local deadline = socket.gettime() + seconds
  local streak = 0
  while socket.gettime() < deadline do
    local res = srv:request("GET", "/version")
    if res and res.status == 200 and res.json.a == v and res.json.b == v then
      streak = streak + 1
      if streak >= n then return true end
    else
      streak = 0
      socket.sleep(0.01)
    end
  end
  return false
end

local function proc_value(pid, field)
  local f = io.open("/proc/" .. pid .. "/status")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

local function fd_count(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

local function median(list)
  table.sort(list)
  return list[math.ceil(#list / 2)]
end

describe("hot reload", function()
  local srv, dir, session, runtime

  setup(function()
    dir = server.scripts_with("version", version_route(0))
    server.write_file(dir .. "/lib/version_b.lua", "return {value = 0}\n")
    runtime = os.tmpname()
    os.remove(runtime)
    srv = server.start({scripts = dir, workers = 2, env = {RUNTIME_DIR = runtime}})
    session = api.admin_session(srv)
  end)

  teardown(function()
    if srv then srv:stop() end
    os.execute("rm -rf " .. dir .. " " .. runtime)
  end)

  -- The id of the generation the master published last (host/server/snapshot.c).
  local function published_id()
    local f = io.open(runtime .. "/current")
    local id = f and tonumber(f:read("*l"):match("^(%d+)"))
    if f then f:close() end
    return id
  end

  local function status()
    local res = srv:request("GET", "/admin/scripts", {headers = api.bearer(session.access)})
    assert.equal(200, res.status, res.body)
    return res.json
  end

  it("serves each of 20 changes on every worker, under load, with no error and no mix", function()
    local wrk_script = os.tmpname()
    server.write_file(wrk_script, [[
      local threads = {}
      function setup(thread) table.insert(threads, thread) end
      function init() mixed = 0; failed = 0 end
      function response(status, headers, body)
        if status < 200 or status > 299 then failed = failed + 1 end
        if body:match('"a":(%d+)') ~= body:match('"b":(%d+)') then mixed = mixed + 1 end
      end
      function done()
        local m, f = 0, 0
        for _, t in ipairs(threads) do m = m + t:get("mixed"); f = f + t:get("failed") end
        io.write(("MIXED=%d FAILED=%d\n"):format(m, f))
      end
    ]])
    local wrk = io.popen(("wrk -t2 -c20 -d30s -s %s http://127.0.0.1:%d/version 2>&1"):format(wrk_script, srv.port))
    socket.sleep(0.5)
    local switch_times = {}
    for v = 1, 20 do
      local t0 = socket.gettime()
      write_version(dir, v)
      assert.is_true(wait_for_version(srv, v, 8, 15), "version " .. v .. " not served")
      switch_times[#switch_times + 1] = socket.gettime() - t0
      if socket.gettime() - t0 < 0.3 then socket.sleep(0.3) end
    end
    os.execute("pkill -INT -f 'wrk -t2 -c20 -d30s -s " .. wrk_script .. "'")
    local report = wrk:read("*a")
    wrk:close()
    os.remove(wrk_script)
    table.sort(switch_times)
    print(("\nreload switch time after the write: median %.3f s, max %.3f s (debounce 0.15 s included)")
      :format(median(switch_times), switch_times[#switch_times]))
    assert.matches("MIXED=0 FAILED=0", report)
    assert.not_matches("Socket errors", report)
    assert.is_true(switch_times[#switch_times] < 10)
  end)

  local function assert_refused(pattern)
    local deadline = socket.gettime() + 10
    local st
    repeat
      st = status()
      if st.last_refused ~= nil and type(st.last_refused) == "table" and st.last_refused.error:find(pattern) then break end
      socket.sleep(0.05)
    until socket.gettime() > deadline
    assert.is_table(st.last_refused)
    assert.matches(pattern, st.last_refused.error)
    return st
  end

  it("refuses a syntax error, keeps serving, shows file:line, and takes the fix", function()
    local good = status().active.id
    server.write_file(dir .. "/routes/version.lua", "return {{\"GET\", \"/version\", function() return nil end\n")
    local st = assert_refused("routes/version%.lua:%d+:")
    assert.equal(good, st.active.id)
    -- the path is the author's file, not the master's copy of it
    assert.truthy(st.last_refused.error:find(dir .. "/routes/version.lua:", 1, true))
    assert.not_matches("/moonkeep%-%d+%-", st.last_refused.error)
    for _ = 1, 10 do assert.equal(200, srv:request("GET", "/version").status) end
    local ready = srv:request("GET", "/readyz")
    assert.equal(200, ready.status)
    assert.is_string(ready.json.last_refused_at)
    assert.not_matches("version%.lua", ready.body, "readyz does not show file paths")
    write_version(dir, 31)
    assert.is_true(wait_for_version(srv, 31, 8, 15))
  end)

  it("refuses a module that raises when required", function()
    server.write_file(dir .. "/lib/version_b.lua", "error('cannot load this')\n")
    assert_refused("lib/version_b%.lua:1: cannot load this")
    for _ = 1, 10 do assert.equal(31, srv:request("GET", "/version").json.a) end
    write_version(dir, 32)
    assert.is_true(wait_for_version(srv, 32, 8, 15))
  end)

  it("refuses a route table conflict", function()
    server.write_route_module(dir, "version", [[
      return {
        {"GET", "/version", function() return {status = 200, body = {a = 0, b = 0}} end},
        {"GET", "/version", function() return {status = 200, body = {a = 0, b = 0}} end},
      }
    ]])
    assert_refused("route conflict: GET /version")
    for _ = 1, 10 do assert.equal(32, srv:request("GET", "/version").json.a) end
  end)

  it("starts a replacement worker on the active generation, not on the broken files", function()
    -- the conflict from the previous case is still on disk
    local pids = srv:worker_pids()
    server.posix.kill(pids[1], server.signal.SIGKILL)
    local deadline = socket.gettime() + 10
    repeat socket.sleep(0.1) until #srv:worker_pids() == 2 or socket.gettime() > deadline
    for _ = 1, 20 do
      local res = srv:request("GET", "/version")
      assert.equal(200, res.status)
      assert.equal(32, res.json.a)
    end
    write_version(dir, 33)
    assert.is_true(wait_for_version(srv, 33, 8, 15))
  end)

  it(("reloads %d times without growing memory or leaking descriptors"):format(ROUNDS), function()
    local function sample()
      local pids = srv:worker_pids()
      table.sort(pids)
      local s = {master = {rss = proc_value(srv.pid, "VmRSS"), fds = fd_count(srv.pid)}}
      for i, pid in ipairs(pids) do s[i] = {pid = pid, rss = proc_value(pid, "VmRSS"), fds = fd_count(pid)} end
      return s
    end
    -- One published generation per round: write, signal, wait for it.
    local function reload_to(v)
      local id = published_id()
      write_version(dir, v)
      srv:kill(server.signal.SIGHUP)
      local deadline = socket.gettime() + 30
      while published_id() == id and socket.gettime() < deadline do socket.sleep(0.002) end
      assert.not_equal(id, published_id(), "round " .. v .. " was not published")
    end
    for v = 1001, 1020 do reload_to(v) end -- warm up allocators and caches
    assert.is_true(wait_for_version(srv, 1020, 8, 30))
    local before = sample()
    local first = published_id()
    for v = 2001, 2000 + ROUNDS do reload_to(v) end
    assert.is_true(wait_for_version(srv, 2000 + ROUNDS, 8, 60))
    socket.sleep(0.5)
    local after = sample()
    local lines = {}
    for _, key in ipairs({"master", 1, 2}) do
      local b, a = before[key], after[key]
      lines[#lines + 1] = ("%s: RSS %d -> %d kB, fds %d -> %d"):format(tostring(key), b.rss, a.rss, b.fds, a.fds)
      assert.equal(b.fds, a.fds, "descriptors of " .. tostring(key))
      if not SANITIZED then -- ASan's quarantine holds freed memory on purpose
        assert.is_true(a.rss - b.rss < 8 * 1024, lines[#lines])
      end
    end
    print("\n" .. table.concat(lines, "\n"))
    assert.is_true(published_id() - first >= ROUNDS)
  end)
end)
