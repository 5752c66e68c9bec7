-- The host itself, against the real binary: meta routes, JSON errors,
-- request ids, limits, script errors, signals and worker supervision.
local server = require "support.server"

local function read_all(cmd)
  local p = io.popen(cmd .. "; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return out:gsub("__exit=%d+%s*$", ""), code
end

local scripts_with = server.scripts_with

describe("the host", function()
  local srv

  setup(function()
    srv = server.start({workers = 2, env = {MAX_BODY_BYTES = "2048"}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("runs the specs on LuaJIT", function()
    assert.is_not_nil(jit)
  end)

  it("answers GET / with the service's identity", function()
    local res = assert(srv:request("GET", "/"))
    assert.equal(200, res.status)
    assert.matches("^application/json", res.headers["content-type"])
    assert.equal("moonkeep", res.json.service)
    assert.equal("/apidocs", res.json.docs)
    assert.is_string(res.json.version)
  end)

  it("answers /healthz with 200", function()
    assert.equal(200, srv:request("GET", "/healthz").status)
  end)

  it("answers POST / with a JSON 405 and an Allow header", function()
    local res = srv:request("POST", "/", {body = {}})
    assert.equal(405, res.status)
    assert.equal("method_not_allowed", res.json.error.code)
    assert.matches("GET", res.headers["allow"])
  end)

  it("answers an unknown path with a JSON 404", function()
    local res = srv:request("GET", "/no/such/thing")
    assert.equal(404, res.status)
    assert.equal("not_found", res.json.error.code)
    assert.is_string(res.json.error.message)
  end)

  it("echoes a sane X-Request-Id and logs it on the access line", function()
    local res = srv:request("GET", "/healthz", {headers = {["X-Request-Id"] = "spec-id.1:a_b-c"}})
    assert.equal("spec-id.1:a_b-c", res.headers["x-request-id"])
    server.sleep(0.1)
    local found = false
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "request" and line.request_id == "spec-id.1:a_b-c" then
        found = true
        assert.equal("/healthz", line.path)
        assert.equal(200, line.status)
        assert.is_number(line.duration_ms)
        assert.is_number(line.pid)
      end
    end
    assert.is_true(found)
  end)

  it("replaces an X-Request-Id that is not a sane token", function()
    for _, bad in ipairs({"has space", string.rep("a", 129), "semi;colon"}) do
      local res = srv:request("GET", "/healthz", {headers = {["X-Request-Id"] = bad}})
      assert.not_equal(bad, res.headers["x-request-id"])
      assert.matches("^[%w]+$", res.headers["x-request-id"])
    end
  end)

  it("gives every response, errors included, an X-Request-Id", function()
    assert.is_string(srv:request("GET", "/nope").headers["x-request-id"])
    assert.is_string(srv:request("POST", "/").headers["x-request-id"])
  end)

  it("refuses a body over MAX_BODY_BYTES with a JSON 413", function()
    local res = srv:request("POST", "/", {body = string.rep("x", 5000), headers = {["Content-Type"] = "application/json"}})
    assert.equal(413, res.status)
    assert.equal("payload_too_large", res.json.error.code)
  end)

  it("refuses a chunked body over MAX_BODY_BYTES with a JSON 413", function()
    local conn = assert(srv:connect())
    local chunk = string.rep("y", 1500)
    conn:send_raw("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ = 1, 3 do conn:send_raw(("%x\r\n%s\r\n"):format(#chunk, chunk)) end
    conn:send_raw("0\r\n\r\n")
    local res = assert(conn:read_response())
    conn:close()
    assert.equal(413, res.status)
    assert.equal("payload_too_large", res.json.error.code)
  end)

  it("answers a malformed request line with a JSON 400", function()
    local conn = assert(srv:connect())
    conn:send_raw("THIS IS NOT HTTP\r\n\r\n")
    local res = assert(conn:read_response())
    conn:close()
    assert.equal(400, res.status)
    assert.equal("bad_request", res.json.error.code)
  end)

  it("refuses a header value with control characters", function()
    local conn = assert(srv:connect())
    conn:send_raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: a\rb\r\nConnection: close\r\n\r\n")
    local res = assert(conn:read_response())
    conn:close()
    assert.equal(400, res.status)
  end)

  it("serves several requests on one keep-alive connection", function()
    local conn = assert(srv:connect())
    for _ = 1, 5 do
      assert.equal(200, conn:request("GET", "/healthz", {keepalive = true}).status)
    end
    conn:close()
  end)

  it("still answers after all of the above", function()
    assert.equal(200, srv:request("GET", "/healthz").status)
  end)
end)

describe("a script error", function()
  local srv, dir

  setup(function()
    dir = scripts_with("boom", [[
      return {
        {"GET", "/boom", function() error("kaboom: secret internals at /srv/app.lua") end},
        {"GET", "/yield", function() coroutine.yield() end},
      }
    ]])
    srv = server.start({scripts = dir})
  end)

  teardown(function()
    srv:stop()
    os.execute("rm -rf " .. dir)
  end)

  it("becomes a 500 with the API's body and no traceback", function()
    local res = srv:request("GET", "/boom", {headers = {["X-Request-Id"] = "boom-1"}})
    assert.equal(500, res.status)
    assert.same({error = {code = "internal", message = "internal server error"}}, res.json)
    assert.not_matches("kaboom", res.body)
    assert.not_matches("traceback", res.body)
  end)

  it("logs the traceback with the request id", function()
    server.sleep(0.1)
    local logged = false
    for _, line in ipairs(srv:log_lines()) do
      if line.request_id == "boom-1" and line.msg == "script error" then
        logged = line.error:find("kaboom", 1, true) and line.error:find("traceback", 1, true)
      end
    end
    assert.truthy(logged)
  end)

  it("turns a bare coroutine.yield into a 500 rather than a hung request", function()
    assert.equal(500, srv:request("GET", "/yield").status)
  end)
end)

describe("moonkeep's command line", function()
  it("prints its version", function()
    local out, code = read_all((os.getenv("MOONKEEP_BIN") or "build/moonkeep") .. " version")
    assert.equal(0, code)
    assert.matches("^moonkeep %d+%.%d+%.%d+", out)
  end)

  it("explains itself with --help", function()
    local out, code = read_all((os.getenv("MOONKEEP_BIN") or "build/moonkeep") .. " --help")
    assert.equal(0, code)
    assert.matches("migrate", out)
  end)

  it("checks good scripts with exit 0", function()
    local _, code = read_all("SCRIPTS_DIR=scripts " .. (os.getenv("MOONKEEP_BIN") or "build/moonkeep") .. " check 2>&1")
    assert.equal(0, code)
  end)

  it("reports file:line of a broken script and exits 1", function()
    local dir = scripts_with("broken", "return {\n  {\"GET\", \"/x\", function() end\n")
    server.write_file(dir .. "/routes/broken.lua", "return {\n  {\"GET\", \"/x\", function() end\n")
    local out, code = read_all("SCRIPTS_DIR=" .. dir .. " " .. (os.getenv("MOONKEEP_BIN") or "build/moonkeep") .. " check 2>&1")
    os.execute("rm -rf " .. dir)
    assert.equal(1, code)
    assert.matches("routes/broken%.lua:%d+:", out)
  end)

  it("applies migrations with `moonkeep migrate`", function()
    local _, code = read_all((os.getenv("MOONKEEP_BIN") or "build/moonkeep") .. " migrate 2>&1")
    assert.equal(0, code)
  end)
end)

describe("signals and supervision", function()
  it("reloads scripts on SIGHUP", function()
    local dir = scripts_with("hello", [[return {{"GET", "/hello", function() return {status = 200, body = {v = 1}} end}}]])
    local srv = server.start({scripts = dir, workers = 2})
    assert.equal(1, srv:request("GET", "/hello").json.v)
    server.write_route_module(dir, "hello", [[return {{"GET", "/hello", function() return {status = 200, body = {v = 2}} end}}]])
    srv:kill(server.signal.SIGHUP)
    local streak = 0
    for _ = 1, 400 do -- until both workers answer with the new code
      streak = srv:request("GET", "/hello").json.v == 2 and streak + 1 or 0
      if streak == 6 then break end
      server.sleep(0.025)
    end
    assert.equal(6, streak)
    srv:stop()
    os.execute("rm -rf " .. dir)
  end)

  it("replaces a worker killed with SIGKILL, and the others keep serving", function()
    local srv = server.start({workers = 2})
    local before = srv:worker_pids()
    assert.equal(2, #before)
    server.posix.kill(before[1], server.signal.SIGKILL)
    for _ = 1, 20 do assert.equal(200, srv:request("GET", "/healthz").status) end
    local replaced = false
    for _ = 1, 60 do
      local now = srv:worker_pids()
      if #now == 2 and now[1] ~= before[1] and now[2] ~= before[1] then replaced = true; break end
      server.sleep(0.05)
    end
    assert.is_true(replaced)
    local logged = false
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "worker died; restarting" and line.signal == 9 then logged = true end
    end
    assert.is_true(logged)
    srv:stop()
  end)

  it("drains on SIGTERM under load: every request sent is answered 2xx, exit 0", function()
    local srv = server.start({workers = 2})
    -- 50 keep-alive clients (not wrk: it counts a refused connection, which
    -- is what a client gets once the drained server is gone, as a socket
    -- error like a dropped request, and its fixed duration raced the drain)
    local load = io.popen(("/usr/bin/python3 spec/support/keepalive_load.py %d 50"):format(srv.port))
    assert.equal("running", load:read("*l"))
    server.sleep(0.3)
    srv:kill(server.signal.SIGTERM)
    local how, code = srv:wait_exit(30)
    local totals = require("cjson").decode(load:read("*l") or "null")
    load:close()
    assert.equal("exited", how)
    assert.equal(0, code)
    assert.is_true(totals.ok > 50, "the clients were answered before and during the drain")
    assert.equal(0, totals.non_2xx)
    assert.equal(0, totals.dropped, "a request sent was never answered")
    assert.equal(50, totals.refused, "every client ends refused: the listener is gone")
  end)
end)
