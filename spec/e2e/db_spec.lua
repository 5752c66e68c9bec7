-- host.db against the real binary and a real PostgreSQL: type mapping,
-- parameters, transactions, error tables, misuse, concurrency, the pool's
-- limits, cancellation, and surviving a database restart.
--
-- The server runs spec/fixtures/db_scripts (routes that call host.db with
-- values from the request). The database is $DATABASE_URL when set
-- (tools/test.sh), else a private cluster; the restart specs always use a
-- private cluster of their own, since they stop it.
local server = require "support.server"
local socket = require "socket"
local cjson = require "cjson.safe"

local SCRIPTS = "spec/fixtures/db_scripts"
local null = cjson.null

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return out:gsub("__exit=%d+%s*$", ""), code
end

-- A private PostgreSQL cluster (tools/pg-cluster.sh) in a fresh folder.
local Cluster = {}
Cluster.__index = Cluster

local function new_cluster()
  local dir = os.tmpname()
  os.remove(dir)
  local out, code = run("tools/pg-cluster.sh start " .. dir)
  assert(code == 0, "cannot start PostgreSQL: " .. out)
  return setmetatable({dir = dir, url = out:match("(postgresql://%S+)")}, Cluster)
end

function Cluster:stop() return run("tools/pg-cluster.sh stop " .. self.dir) end
function Cluster:start()
  local out, code = run("tools/pg-cluster.sh start " .. self.dir)
  assert(code == 0, "cannot restart PostgreSQL: " .. out)
end
function Cluster:remove()
  self:stop()
  run("rm -rf " .. self.dir)
end

local function start_server(url, env)
  local all = {DATABASE_URL = url, MIGRATE_ON_START = "0",
               JWT_SECRET = os.getenv("JWT_SECRET") or string.rep("s", 48)}
  for k, v in pairs(env or {}) do all[k] = v end
  return server.start({scripts = SCRIPTS, workers = 1, env = all})
end

local function query(srv, sql, ...)
  return srv:request("POST", "/query", {body = {sql = sql, params = {...}}})
end

local function tx(srv, body)
  return srv:request("POST", "/tx", {body = body})
end

-- Sends a request on its own connection without reading the answer.
local function send(srv, path)
  local conn = assert(srv:connect())
  assert(conn:send_raw("GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
  return conn
end

local function post(srv, path, body)
  local conn = assert(srv:connect())
  local text = cjson.encode(body)
  assert(conn:send_raw("POST " .. path .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    .. "Content-Type: application/json\r\nContent-Length: " .. #text .. "\r\n\r\n" .. text))
  return conn
end

-- True when the connection has nothing to read yet (its answer is pending).
local function pending(conn)
  conn.sock:settimeout(0)
  local data, err, partial = conn.sock:receive(1)
  conn.sock:settimeout(15)
  return data == nil and err == "timeout" and (partial == nil or partial == "")
end

local function eventually(seconds, fn)
  local deadline = socket.gettime() + seconds
  repeat
    local value = fn()
    if value then return value end
    socket.sleep(0.1)
  until socket.gettime() > deadline
  return nil
end

local function count_of(srv, key)
  return srv:request("GET", "/count?k=" .. key).json.rows[1].n
end

local function active_sleeps(srv)
  return srv:request("GET", "/active_sleeps").json.rows[1].n
end

describe("host.db outside a request", function()
  it("loads from host.so and raises a clear error when called", function()
    local db = require "host.db"
    assert.is_function(db.query)
    assert.is_function(db.transaction)
    assert.is_function(db.ready)
    assert.equal(null, db.null)
    local outside = " can only wait in the request's own coroutine (not in the main chunk, nor in a coroutine the script made)"
    assert.has_error(function() db.query("SELECT 1") end, "db.query" .. outside)
    assert.has_error(function() db.ready() end, "db.ready" .. outside)
    local ok, err = pcall(db.transaction, function() end)
    assert.is_false(ok)
    assert.matches("only be called while the host runs a request", err)
  end)
end)

describe("host.db", function()
  local cluster, srv
  local url = os.getenv("DATABASE_URL")

  setup(function()
    if not url or url == "" then
      cluster = new_cluster()
      url = cluster.url
    end
    srv = start_server(url)
    assert.equal(200, query(srv, "CREATE TABLE IF NOT EXISTS dbspec_items (k text PRIMARY KEY, v int)").status)
    assert.equal(200, query(srv, "TRUNCATE dbspec_items").status)
  end)

  teardown(function()
    if srv then
      query(srv, "DROP TABLE IF EXISTS dbspec_items")
      srv:stop()
    end
    if cluster then cluster:remove() end
  end)

  describe("maps column types", function()
    local row, types

    setup(function()
      local res = query(srv, "SELECT 1::int2 AS i2, 2::int4 AS i4, 42::int8 AS i8, 7::oid AS o,"
        .. " true AS t, false AS f, 1.5::float4 AS f4, 0.25::float8 AS f8, 12.340::numeric AS num,"
        .. " 'hi'::text AS txt, 'v'::varchar AS vc, 'x'::char(2) AS ch,"
        .. " '2026-12-01 13:45:00+00'::timestamptz AS ts,"
        .. " '2026-12-01 15:45:00.123456+02'::timestamptz AS tsf,"
        .. " 'infinity'::timestamptz AS tinf, '2026-12-01'::date AS d,"
        .. " '{\"a\": [1, 2], \"b\": null}'::json AS j, '{\"k\": \"v\"}'::jsonb AS jb, 'null'::jsonb AS jnull,"
        .. " NULL::text AS n, NULL::int AS ni")
      assert.equal(200, res.status)
      row, types = res.json.rows[1], res.json.types[1]
    end)

    it("int2, int4, int8 and oid to numbers", function()
      assert.same({1, 2, 42, 7}, {row.i2, row.i4, row.i8, row.o})
      assert.same({"number", "number", "number", "number"}, {types.i2, types.i4, types.i8, types.o})
    end)

    it("bool to booleans", function()
      assert.is_true(row.t)
      assert.is_false(row.f)
      assert.equal("boolean", types.t)
    end)

    it("float4 and float8 to numbers, numeric to a string", function()
      assert.equal(1.5, row.f4)
      assert.equal(0.25, row.f8)
      assert.equal("number", types.f8)
      assert.equal("12.340", row.num)
      assert.equal("string", types.num)
    end)

    it("text, varchar and other types to strings", function()
      assert.same({"hi", "v", "x "}, {row.txt, row.vc, row.ch})
      assert.equal("2026-12-01", row.d)
    end)

    it("timestamptz to RFC 3339 UTC, keeping fractional seconds", function()
      assert.equal("2026-12-01T13:45:00Z", row.ts)
      assert.equal("2026-12-01T13:45:00.123456Z", row.tsf)
      assert.equal("infinity", row.tinf)
    end)

    it("json and jsonb to decoded Lua values", function()
      assert.equal("table", types.j)
      assert.same({1, 2}, row.j.a)
      assert.equal(null, row.j.b)
      assert.same({k = "v"}, row.jb)
      assert.equal("null", types.jnull)
    end)

    it("SQL NULL to cjson.null, present in the row, unlike a column that is not there", function()
      assert.equal("null", types.n)
      assert.equal("null", types.ni)
      assert.equal(null, row.n)
      assert.is_nil(row.not_a_column)
      assert.is_nil(types.not_a_column)
    end)
  end)

  describe("sends parameters", function()
    it("as values, whatever quotes, backslashes or unicode they hold", function()
      local tricky = "O'Reilly \"quoted\" \\ back\\slash; DROP TABLE dbspec_items; --"
      local unicode = "snow \226\152\131 clef \240\157\132\158 \195\169"
      local res = query(srv, "SELECT $1::text AS a, $2::text AS b, length($2::text) AS n", tricky, unicode)
      assert.equal(200, res.status)
      assert.equal(tricky, res.json.rows[1].a)
      assert.equal(unicode, res.json.rows[1].b)
      assert.equal(15, res.json.rows[1].n)
    end)

    it("numbers as integers or floats, booleans as t/f", function()
      local res = query(srv, "SELECT $1::int + 1 AS n, $2::float8 AS f, $3::boolean AS b, $4::boolean AS nb,"
        .. " $5::bigint = 4294967296 AS big, $6::int AS whole", 41, 0.5, true, false, 4294967296, 3.0)
      local row = res.json.rows[1]
      assert.same({42, 0.5, true, false, true, 3}, {row.n, row.f, row.b, row.nb, row.big, row.whole})
    end)

    it("nil and cjson.null as SQL NULL", function()
      local res = srv:request("GET", "/nil")
      assert.equal(200, res.status)
      assert.same({a_is_null = true, b = 5, c_is_null = true}, res.json.rows[1])
      res = query(srv, "SELECT $1::int IS NULL AS is_null", null)
      assert.is_true(res.json.rows[1].is_null)
    end)

    it("refuses a string with a NUL byte as an expected failure, without the server", function()
      local res = query(srv, "SELECT $1::text AS s", "a\0b")
      assert.equal(400, res.status)
      assert.equal("query", res.json.error.code)
      assert.equal("22021", res.json.error.sqlstate)
    end)
  end)

  describe("returns rows", function()
    it("with rows.affected from the command tag, and as a plain array", function()
      local res = query(srv, "INSERT INTO dbspec_items (k, v) VALUES ($1, 1), ($2, 2)", "aff1", "aff2")
      assert.equal(2, res.json.affected)
      assert.equal(0, res.json.count)
      assert.is_false(res.json.affected_is_raw) -- served by the metatable: rows encodes as an array
      res = query(srv, "UPDATE dbspec_items SET v = v + 1 WHERE k LIKE 'aff%'")
      assert.equal(2, res.json.affected)
      res = query(srv, "SELECT k FROM dbspec_items WHERE k LIKE 'aff%' ORDER BY k")
      assert.equal(2, res.json.count)
      assert.same({{k = "aff1"}, {k = "aff2"}}, res.json.rows)
      res = query(srv, "CREATE TABLE IF NOT EXISTS dbspec_items (k text PRIMARY KEY, v int)")
      assert.equal(0, res.json.affected)
    end)

    it("from the same statement many times (prepared once per connection)", function()
      for i = 1, 20 do
        local res = query(srv, "SELECT $1::int * 2 AS twice", i)
        assert.equal(i * 2, res.json.rows[1].twice)
      end
    end)
  end)

  describe("returns error tables", function()
    it("with the SQLSTATE, constraint and detail of a unique violation", function()
      assert.equal(200, query(srv, "INSERT INTO dbspec_items (k, v) VALUES ($1, 1)", "dup").status)
      local res = query(srv, "INSERT INTO dbspec_items (k, v) VALUES ($1, 1)", "dup")
      assert.equal(400, res.status)
      local err = res.json.error
      assert.equal("query", err.code)
      assert.equal("23505", err.sqlstate)
      assert.equal("dbspec_items_pkey", err.constraint)
      assert.equal("dbspec_items", err.table)
      assert.matches("already exists", err.detail)
      assert.matches("duplicate key value", err.message)
      assert.equal("query: " .. err.message .. " (SQLSTATE 23505)", err.tostring)
    end)

    it("for syntax errors and failing expressions", function()
      local res = query(srv, "SELEC 1")
      assert.equal("42601", res.json.error.sqlstate)
      res = query(srv, "SELECT 1 / $1::int", 0)
      assert.equal("22012", res.json.error.sqlstate)
      assert.equal("query", res.json.error.code)
    end)
  end)

  describe("raises on misuse", function()
    local messages
    setup(function() messages = srv:request("GET", "/misuse").json end)

    it("when the SQL is not a string", function()
      assert.matches("bad argument #1 to '%S+' %(string expected, got no value%)", messages.no_sql)
      assert.matches("bad argument #1 to '%S+' %(string expected, got table%)", messages.table_sql)
      assert.matches("bad argument #1 .*NUL byte", messages.nul_sql)
    end)

    it("when a parameter has no SQL form", function()
      assert.matches("bad argument #2 .*table cannot be a query parameter", messages.table_param)
      assert.matches("bad argument #3 .*function cannot be a query parameter", messages.function_param)
    end)

    it("when transaction is given no function", function()
      assert.equal("bad argument #1 to 'transaction' (function expected, got number)", messages.not_a_function)
    end)

    it("when called where the coroutine cannot wait", function()
      assert.matches("db.query cannot wait here", messages.sort)
    end)
  end)

  describe("db.transaction", function()
    it("commits when fn returns a truthy value, and returns fn's results", function()
      local res = tx(srv, {mode = "commit", k = "t_commit"})
      assert.same({ok = true, first = true, second = "extra"}, res.json)
      assert.equal(1, count_of(srv, "t_commit"))
    end)

    it("rolls back when fn raises, and raises again", function()
      local res = tx(srv, {mode = "raise", k = "t_raise"})
      assert.is_false(res.json.ok)
      assert.matches("boom from the transaction", res.json.raised.message)
      assert.equal(0, count_of(srv, "t_raise"))
      res = tx(srv, {mode = "raise_table", k = "t_raise_table"})
      assert.equal("custom", res.json.raised.code)
      assert.equal(0, count_of(srv, "t_raise_table"))
    end)

    it("rolls back when fn returns nil, err (and false)", function()
      local res = tx(srv, {mode = "nil_err", k = "t_nil"})
      assert.same({ok = true, first = "nil", second = "nope"}, res.json)
      assert.equal(0, count_of(srv, "t_nil"))
      res = tx(srv, {mode = "false", k = "t_false"})
      assert.is_false(res.json.first)
      assert.equal(0, count_of(srv, "t_false"))
    end)

    it("returns a query's error table through fn, rolled back", function()
      local res = tx(srv, {mode = "conflict", k = "t_conflict"})
      assert.equal("nil", res.json.first)
      assert.equal("23505", res.json.second.sqlstate)
      assert.equal(0, count_of(srv, "t_conflict"))
    end)

    it("does not commit a transaction a failed statement aborted", function()
      local res = tx(srv, {mode = "ignored_error", k = "t_ignored"})
      assert.equal("nil", res.json.first)
      assert.equal("25P02", res.json.second.sqlstate)
      assert.equal(0, count_of(srv, "t_ignored"))
    end)

    it("makes tx.query raise once the transaction is over", function()
      local res = tx(srv, {mode = "after", k = "t_after"})
      assert.is_false(res.json.after.ok)
      assert.matches("outside its transaction", res.json.after.message)
    end)

    it("leaves every connection clean (no transaction left open)", function()
      local res = query(srv, "SELECT count(*)::int AS n FROM pg_stat_activity"
        .. " WHERE datname = current_database() AND state LIKE 'idle in transaction%'")
      assert.equal(0, res.json.rows[1].n)
    end)
  end)

  it("answers db.ready() with true", function()
    local res = srv:request("GET", "/ready")
    assert.equal(200, res.status)
    assert.is_true(res.json.ready)
  end)

  it("does not hold up other requests while a query waits (one worker)", function()
    local slow = send(srv, "/sleep?s=1")
    socket.sleep(0.2)
    assert.equal(200, srv:request("GET", "/healthz").status)
    assert.equal(200, srv:request("GET", "/nil").status)
    assert.is_true(pending(slow)) -- finished after the requests started after it
    local res = slow:read_response()
    slow:close()
    assert.equal(200, res.status)
    assert.equal("done", res.json.rows[1].status)
  end)

  it("cancels the query of a client that went away", function()
    local conn = send(srv, "/sleep?s=30")
    assert.truthy(eventually(3, function() return active_sleeps(srv) == 1 end))
    conn:close()
    assert.truthy(eventually(3, function() return active_sleeps(srv) == 0 end))
    assert.equal(200, srv:request("GET", "/nil").status)
  end)

  it("rolls back the transaction of a client that went away", function()
    local conn = post(srv, "/tx", {mode = "sleep", k = "t_gone", s = 30})
    assert.truthy(eventually(3, function() return active_sleeps(srv) == 1 end))
    conn:close()
    -- the same key inserts at once: the first insert was rolled back
    local res = tx(srv, {mode = "commit", k = "t_gone"})
    assert.same({ok = true, first = true, second = "extra"}, res.json)
    assert.equal(0, active_sleeps(srv))
  end)

  it("rolls back an open transaction whose client left while it waited on db.query", function()
    local conn = post(srv, "/tx", {mode = "sleep_outside", k = "t_gone2", s = 30})
    assert.truthy(eventually(3, function() return active_sleeps(srv) == 1 end))
    conn:close()
    local res = tx(srv, {mode = "commit", k = "t_gone2"})
    assert.same({ok = true, first = true, second = "extra"}, res.json)
  end)
end)

describe("host.db with a small pool", function()
  local cluster, srv
  local url = os.getenv("DATABASE_URL")

  setup(function()
    if not url or url == "" then
      cluster = new_cluster()
      url = cluster.url
    end
    srv = start_server(url, {DB_POOL_SIZE = "1", DB_QUEUE_MAX = "2", DB_QUEUE_TIMEOUT_MS = "300",
                             DB_STATEMENT_TIMEOUT_MS = "1500"})
  end)

  teardown(function()
    if srv then srv:stop() end
    if cluster then cluster:remove() end
  end)

  it("answers 503 'unavailable' to requests that wait too long or find the queue full", function()
    local conns = {}
    for i = 1, 4 do
      conns[i] = send(srv, "/sleep?s=1")
      socket.sleep(0.02)
    end
    local statuses, messages = {}, {}
    for i = 1, 4 do
      local res = conns[i]:read_response()
      conns[i]:close()
      statuses[res.status] = (statuses[res.status] or 0) + 1
      if res.status == 503 then
        assert.equal("unavailable", res.json.error.code)
        messages[res.json.error.message] = true
      end
    end
    assert.same({[200] = 1, [503] = 3}, statuses)
    assert.is_true(messages["database pool exhausted"])
    assert.is_true(messages["database pool queue is full"])
    assert.equal(200, srv:request("GET", "/nil").status)
  end)

  it("answers 'timeout' with SQLSTATE 57014 when statement_timeout ends a query", function()
    local res = srv:request("GET", "/sleep?s=5")
    assert.equal(503, res.status)
    assert.equal("timeout", res.json.error.code)
    assert.equal("57014", res.json.error.sqlstate)
    assert.equal(200, srv:request("GET", "/nil").status)
  end)
end)

describe("host.db across a database restart", function()
  local cluster, srv

  setup(function()
    cluster = new_cluster()
    srv = start_server(cluster.url, {DB_POOL_SIZE = "2"})
  end)

  teardown(function()
    if srv then srv:stop() end
    if cluster then cluster:remove() end
  end)

  it("answers 503 while PostgreSQL is down and 200 once it is back, without a restart", function()
    assert.equal(200, srv:request("GET", "/nil").status)
    local workers = srv:worker_pids()

    cluster:stop()
    for _ = 1, 5 do
      local res = srv:request("GET", "/nil")
      assert.equal(503, res.status)
      assert.equal("unavailable", res.json.error.code)
    end
    local ready = srv:request("GET", "/ready")
    assert.equal(503, ready.status)
    assert.equal("unavailable", ready.json.error.code)
    assert.equal(200, srv:request("GET", "/healthz").status)

    cluster:start()
    local back = eventually(15, function()
      local res = srv:request("GET", "/nil")
      return res and res.status == 200
    end)
    assert.is_true(back)
    assert.equal(200, srv:request("GET", "/ready").status)
    assert.same(workers, srv:worker_pids())
  end)

  it("fails a query in flight with 'unavailable' when the server goes away", function()
    local conn = send(srv, "/sleep?s=30")
    assert.truthy(eventually(3, function() return active_sleeps(srv) == 1 end))
    cluster:stop()
    local res = conn:read_response()
    conn:close()
    assert.equal(503, res.status)
    assert.equal("unavailable", res.json.error.code)
    cluster:start()
    assert.truthy(eventually(15, function()
      local r = srv:request("GET", "/nil")
      return r and r.status == 200
    end))
  end)
end)

describe("host.db settings", function()
  it("refuses to start with a DATABASE_URL that is not a connection string, quoting none of it", function()
    local srv = server.start({scripts = SCRIPTS, workers = 1, wait = false,
                              env = {DATABASE_URL = "host='unterminated password=hunter2", MIGRATE_ON_START = "0"}})
    finally(function() srv:stop() end)
    local how, code = srv:wait_exit(10)
    assert.equal("exited", how, srv:log_text())
    assert.equal(1, code)
    local line = srv:log_line("configuration refused; not starting")
    assert(line, srv:log_text())
    assert.equal("db", line.service)
    assert.equal("DATABASE_URL (or POSTGRES_*) is not a valid connection string", line.error)
    assert.is_nil(srv:log_text():find("hunter2", 1, true), "no part of the string is logged")
  end)
end)
