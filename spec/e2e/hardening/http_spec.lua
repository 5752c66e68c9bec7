-- Hardening (issue 8), the HTTP layer: limits, framing and control characters in heads,
-- slow and idle clients, the connection cap: against the real binary, real PostgreSQL and a real SMTP
-- server. One named case per row of the issue; each asserts the exact answer
-- and that the service is still healthy afterwards, and the last case
-- searches every server's whole log for every password and token the file
-- used. Helpers: spec/support/hardening.lua.
local hard = require "support.hardening"
local client = require "support.http_client"
local socket = require "socket"

local start, unique, assert_healthy, assert_error, raw, closed_by_server, request_bytes, register_body,
  count_admins
  = hard.start, hard.unique, hard.assert_healthy, hard.assert_error, hard.raw, hard.closed_by_server,
  hard.request_bytes, hard.register_body, hard.count_admins

describe("hardening:", function()
  local srv, url
  local main

  setup(function()
    main = hard.main_server()
    srv, url = main.srv, main.url
  end)

  teardown(function()
    if main then main.stop() end
  end)

  describe("HTTP", function()
    it("refuses a Content-Length body over the limit with 413 before any script runs", function()
      local email = unique("big") .. "@example.com"
      local body = register_body(email, unique("big"), "long enough password") .. string.rep(" ", 70000)
      local res = raw(srv, request_bytes("POST", "/auth/register",
        {"Content-Type: application/json", "Content-Length: " .. #body, "Connection: close"}, body))
      assert_error(res, 413, "payload_too_large")
      assert.equal(0, count_admins(url, email), "the registration must not have run")
      assert_healthy(srv)
    end)

    it("refuses a chunked body over the limit with 413 before any script runs", function()
      local email = unique("chunk") .. "@example.com"
      local conn = assert(srv:connect())
      conn:send_raw("POST /auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n")
      local first = register_body(email, unique("chunk"), "long enough password")
      conn:send_raw(("%x\r\n%s\r\n"):format(#first, first))
      local pad = string.rep(" ", 30000)
      for _ = 1, 3 do conn:send_raw(("%x\r\n%s\r\n"):format(#pad, pad)) end
      conn:send_raw("0\r\n\r\n")
      local res = conn:read_response()
      conn:close()
      assert_error(res, 413, "payload_too_large")
      assert.equal(0, count_admins(url, email))
      assert_healthy(srv)
    end)

    it("refuses headers over the limit with a JSON 431", function()
      local res = raw(srv, request_bytes("GET", "/healthz", {"X-Big: " .. string.rep("a", 20000)}))
      assert_error(res, 431, "headers_too_large")
      res = raw(srv, request_bytes("GET", "/healthz?" .. string.rep("q", 20000), {}))
      assert_error(res, 431, "headers_too_large")
      local many = {}
      for i = 1, 2000 do many[i] = "X-H" .. i .. ": v" end
      assert_error(raw(srv, request_bytes("GET", "/healthz", many)), 431, "headers_too_large")
      assert_healthy(srv)
    end)

    it("refuses Content-Length together with Transfer-Encoding with 400, and runs nothing", function()
      local email = unique("smuggle") .. "@example.com"
      local body = register_body(email, unique("smug"), "long enough password")
      local res, err = raw(srv, request_bytes("POST", "/auth/register",
        {"Content-Type: application/json", "Content-Length: 4", "Transfer-Encoding: chunked"},
        ("%x\r\n%s\r\n0\r\n\r\n"):format(#body, body)))
      assert_error(res, 400, "bad_request")
      assert.equal("close", res.headers.connection, err)
      assert.equal(0, count_admins(url, email))
      assert_healthy(srv)
    end)

    it("refuses a negative Content-Length with 400", function()
      assert_error(raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Content-Length: -1"}, "{}")), 400, "bad_request")
      assert_error(raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Content-Length: +2"}, "{}")), 400, "bad_request")
      assert_healthy(srv)
    end)

    it("refuses a huge chunk size with 413", function()
      local res = raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Transfer-Encoding: chunked"}, "ffffffffffffffffff\r\n{}"))
      assert_error(res, 413, "payload_too_large")
      res = raw(srv, request_bytes("POST", "/auth/login",
        {"Content-Type: application/json", "Transfer-Encoding: chunked"}, "7fffffffffffffff\r\n{}"))
      assert_error(res, 413, "payload_too_large")
      assert_healthy(srv)
    end)

    it("refuses the other framing tricks with 400 and closes the connection", function()
      local cases = {
        {"GET", {"Content-Length: 5"}, "hello"},                      -- a body evhttp would not read
        {"GET", {"Transfer-Encoding: chunked"}, "0\r\n\r\n"},
        {"POST", {"Transfer-Encoding: gzip, chunked"}, "0\r\n\r\n"},  -- only chunked is understood
        {"POST", {"Content-Length: 2", "Content-Length: 3"}, "{}"},
        {"POST", {"Content-Length : 2"}, "{}"},                         -- not a token: not Content-Length
        {"GET", {"Host: a.example", "Host: b.example"}},
      }
      for _, case in ipairs(cases) do
        local headers = {"Content-Type: application/json"}
        for _, h in ipairs(case[2]) do headers[#headers + 1] = h end
        local res = raw(srv, request_bytes(case[1], "/healthz", headers, case[3]))
        assert_error(res, 400, "bad_request")
        assert.equal("close", res.headers.connection)
      end
      assert_healthy(srv)
    end)

    it("refuses a NUL, a bare CR or a bare LF in a header value with 400", function()
      for _, value in ipairs({"a\0b", "a\rb", "a\nb: c", "a\r\n folded"}) do
        local res = raw(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: " .. value .. "\r\n\r\n")
        assert_error(res, 400, "bad_request")
        assert.equal("close", res.headers.connection)
      end
      assert_healthy(srv)
    end)

    it("keeps an idle keep-alive connection open for 2 s with the default KEEPALIVE_TIMEOUT_S (75)", function()
      local conn = assert(srv:connect())
      local res = conn:request("GET", "/healthz", {keepalive = true})
      assert.equal(200, res.status)
      assert.is_nil(res.headers.connection)
      socket.sleep(2)
      res = conn:request("GET", "/healthz", {keepalive = true})
      conn:close()
      assert.is_table(res, "the idle connection was closed")
      assert.equal(200, res.status)
      assert_healthy(srv)
    end)
  end)
end)

-- ---- connection limits ---------------------------------------------------------------

describe("hardening: connection limits", function()
  local srv

  setup(function()
    srv = start({workers = 1, env = {REQUEST_READ_TIMEOUT_S = "3", MAX_CONNECTIONS = "8"}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("cuts a slowloris (one byte a second) off at the request deadline while others are served", function()
    local slow_head = assert(srv:connect())
    local slow_body = assert(srv:connect())
    local t0 = socket.gettime()
    local head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " .. string.rep("a", 30)
    slow_body:send_raw("POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      .. "Content-Length: 60\r\n\r\n{")
    local closed_at = {}
    -- what each connection received so far: the 408 may arrive in one read
    -- (as a partial, the socket still open) and the close in a later one
    local received = {head = "", body = ""}
    local served, i = 0, 0
    while socket.gettime() - t0 < 6 and not (closed_at.head and closed_at.body) do
      i = i + 1
      for name, conn in pairs({head = slow_head, body = slow_body}) do
        if not closed_at[name] then
          local ok = conn:send_raw(name == "head" and head:sub(i, i) or " ")
          conn.sock:settimeout(0)
          local data, err, partial = conn.sock:receive("*a")
          received[name] = received[name] .. (data or partial or "")
          if not ok or (err and err ~= "timeout") or data then
            closed_at[name] = {t = socket.gettime() - t0, reply = received[name]}
          end
        end
      end
      -- others are served meanwhile
      local t1 = socket.gettime()
      local res = srv:request("GET", "/healthz", {timeout = 2})
      assert.equal(200, res and res.status)
      assert.is_true(socket.gettime() - t1 < 0.5)
      served = served + 1
      socket.sleep(math.max(0, t0 + i - socket.gettime()))
    end
    slow_head:close()
    slow_body:close()
    for _, name in ipairs({"head", "body"}) do
      local c = assert(closed_at[name], "the slow " .. name .. " was never cut off")
      assert.is_true(c.t >= 2.5 and c.t < 5, ("cut off after %.2f s"):format(c.t))
      assert.matches("^HTTP/1.1 408", c.reply)
      assert.matches('"code":"request_timeout"', c.reply)
    end
    assert.is_true(served >= 3)
    local logged = 0
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "request read deadline passed" and line.status == 408 then logged = logged + 1 end
    end
    assert.is_true(logged >= 2)
    assert_healthy(srv)
  end)

  it("refuses a connection flood past MAX_CONNECTIONS while established clients are still served", function()
    local regular = assert(srv:connect())
    assert.equal(200, regular:request("GET", "/healthz", {keepalive = true}).status)
    local flood = {}
    for i = 1, 24 do flood[i] = assert(client.connect(srv.port, 5)) end
    socket.sleep(0.3)
    -- the established keep-alive client is served at once
    local t0 = socket.gettime()
    local res = regular:request("GET", "/healthz", {keepalive = true})
    assert.equal(200, res.status)
    assert.is_true(socket.gettime() - t0 < 0.5)
    -- a newcomer is not admitted while the cap is reached
    local newcomer = assert(client.connect(srv.port, 1))
    newcomer:send_raw(request_bytes("GET", "/healthz", {"Connection: close"}))
    newcomer.sock:settimeout(1)
    local early = newcomer.sock:receive("*l")
    assert.is_nil(early, "a connection past the cap was served")
    local limited = false
    for _, line in ipairs(srv:log_lines()) do
      if line.msg == "connection limit reached; not accepting" then
        limited = true
        assert.equal(8, line.max_connections)
        assert.is_true(line.connections <= 8)
      end
    end
    assert.is_true(limited)
    -- the flood goes away: everyone is served again
    for _, c in ipairs(flood) do c:close() end
    newcomer.sock:settimeout(5)
    local line = newcomer.sock:receive("*l")
    newcomer:close()
    assert.equal("HTTP/1.1 200 OK", line)
    assert.equal(200, regular:request("GET", "/healthz", {keepalive = true}).status)
    regular:close()
    assert_healthy(srv)
  end)
end)

describe("hardening: KEEPALIVE_TIMEOUT_S", function()
  it("closes an idle keep-alive connection after KEEPALIVE_TIMEOUT_S when set small", function()
    local srv = start({workers = 1, env = {KEEPALIVE_TIMEOUT_S = "1"}})
    local conn = assert(srv:connect())
    assert.equal(200, conn:request("GET", "/healthz", {keepalive = true}).status)
    local t0 = socket.gettime()
    local closed = closed_by_server(conn, 5)
    local after = socket.gettime() - t0
    conn:close()
    assert.is_true(closed)
    assert.is_true(after >= 0.8 and after < 3, ("closed after %.2f s"):format(after))
    assert_healthy(srv)
    srv:stop()
  end)
end)

describe("hardening: leaks", function()
  it("logs no password, token or key of this file in any of its servers' logs", function()
    hard.assert_no_secrets_logged()
  end)
end)
