-- `moonkeep import` against the real binary: a Flask database (its schema,
-- plain-text passwords) built in a scratch database of the test cluster,
-- with a few hundred rows of which some must be refused (duplicates by
-- case, an empty name, an over-long email, taken emails and ids); the
-- dry run changes nothing, the run imports and reports row by row, the
-- second run changes nothing and says so, and an imported admin logs in
-- with the old password through the real server.
local server = require "support.server"
local util = require "support.util"
local api = require "support.api"
local cjson = require "cjson.safe"

local DATABASE_URL = assert(os.getenv("DATABASE_URL"), "DATABASE_URL is required (tools/test.sh sets it)")
local BIN = os.getenv("MOONKEEP_BIN") or "build/moonkeep"

local N_ADMINS, N_USERS = 36, 300
-- of which 4 admins and 4 users are refused
local IMPORTED = N_ADMINS - 4 + N_USERS - 4

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a shell command: its stdout, its exit status, and its stderr.
local function run(cmd)
  local err_path = os.tmpname()
  local p = io.popen(cmd .. " 2>" .. sh(err_path) .. "; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local err = util.read_file(err_path) or ""
  os.remove(err_path)
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return (out:gsub("__exit=%d+%s*$", "")), code, err
end

local function sql(url, query) return util.sql(query, url) end

-- The URL of database `name` on the cluster of `url` (a postgresql:// URI,
-- or key=value settings, where a later dbname wins).
local function database_url(url, name)
  local head, tail = url:match("^(postgres[%a]*://[^/?]*)/?[^?]*(.*)$")
  if head then return head .. "/" .. name .. tail end
  return url .. " dbname=" .. name
end

local function import(from, ...)
  local args = {}
  for i, a in ipairs({...}) do args[i] = sh(a) end
  return run(("%s import --from %s %s"):format(sh(BIN), sh(from), table.concat(args, " ")))
end

local function assert_no_sanitizer_report(text)
  for _, marker in ipairs({"AddressSanitizer", "LeakSanitizer", "runtime error:"}) do
    assert(not text:find(marker, 1, true), "sanitizer report:\n" .. text)
  end
end

describe("moonkeep import", function()
  local tag, flask_db, flask_url, base, taken
  local srv

  -- counts of what the import could touch
  local function snapshot()
    return sql(DATABASE_URL, "SELECT (SELECT count(*) FROM admins) || ',' || (SELECT count(*) FROM users) || ','"
      .. " || (SELECT count(*) FROM audit_events) || ',' || (SELECT coalesce(max(id), 0) FROM admins)")
  end

  setup(function()
    tag = tostring(os.time() % 100000) .. tostring(math.random(100, 999))
    flask_db = "flask_" .. tag
    flask_url = database_url(DATABASE_URL, flask_db)
    -- the schema the target needs, and rows of moonkeep's own first: an
    -- admin and two users whose email or id the source will also have
    srv = server.start({env = {CLIENT_HASH_BUDGET_PER_MIN = "0"}})
    taken = {}
    local owner = api.admin_session(srv)
    taken.admin_id = owner.admin.id
    local res = srv:request("POST", "/users", {headers = api.bearer(owner.access),
                                               body = {email = "taken-" .. tag .. "@example.com"}})
    assert(res.status == 201, res.body)
    taken.user_email_owner = res.json.user.id
    res = srv:request("POST", "/users", {headers = api.bearer(owner.access), body = {email = "idtaken-" .. tag .. "@example.com"}})
    taken.user_id = res.json.user.id

    sql(DATABASE_URL, "CREATE DATABASE " .. flask_db)
    -- ids past anything the target has (an earlier run moved the sequences
    -- past its own), so they are free and kept
    local highest = tonumber(sql(DATABASE_URL, "SELECT greatest((SELECT coalesce(max(id), 0) FROM admins),"
      .. " (SELECT coalesce(max(id), 0) FROM users), 7000000)"))
    base = (math.floor(highest / 1000) + 1) * 1000
    local lines = {
      "CREATE TABLE admins (id integer PRIMARY KEY, email varchar(400), name varchar(80), password varchar(200));",
      "CREATE TABLE users (id integer PRIMARY KEY, email varchar(400), active boolean NOT NULL DEFAULT true);",
    }
    local function admin(id, email, name, password)
      lines[#lines + 1] = ("INSERT INTO admins VALUES (%d, %s, %s, %s);"):format(id, "'" .. email .. "'",
        "'" .. name .. "'", "'" .. password .. "'")
    end
    local function user(id, email, active)
      lines[#lines + 1] = ("INSERT INTO users VALUES (%d, '%s', %s);"):format(id, email, tostring(active))
    end
    for i = 1, N_ADMINS - 6 do
      admin(base + i, ("adm%d-%s@example.com"):format(i, tag), ("adm%d_%s"):format(i, tag), "flask password " .. i)
    end
    local a = base + N_ADMINS
    admin(a - 5, ("ADM1-%s@Example.COM"):format(tag), "dup1_" .. tag, "whatever pw")  -- same address, other case
    admin(a - 4, ("empty-%s@example.com"):format(tag), "", "whatever pw")              -- empty name
    admin(a - 3, string.rep("l", 250) .. "@example.com", "long_" .. tag, "whatever pw") -- over-long email
    admin(a - 2, ("other2-%s@example.com"):format(tag), ("ADM2_%s"):format(tag), "whatever pw") -- same name
    admin(a - 1, ("short-%s@example.com"):format(tag), "short_" .. tag, "abc")          -- weak, still imported
    admin(taken.admin_id, ("idclash-%s@example.com"):format(tag), "idclash_" .. tag, "id clash pw") -- id taken
    for i = 1, N_USERS - 5 do
      user(base + i, ("user%d-%s@example.com"):format(i, tag), i % 3 ~= 0)
    end
    local u = base + N_USERS
    user(u - 4, ("USER1-%s@example.com"):format(tag), true)            -- same address, other case
    user(u - 3, ("User2-%s@Example.com"):format(tag), false)           -- same address, other case
    user(u - 2, string.rep("m", 260) .. "@example.com", true)          -- over-long email
    user(u - 1, ("taken-%s@example.com"):format(tag), true)            -- email taken in moonkeep
    user(taken.user_id, ("moved-%s@example.com"):format(tag), false)   -- id taken in moonkeep
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    local out, code, err = run(("psql %s -XqA -v ON_ERROR_STOP=1 -f %s"):format(sh(flask_url), sh(path)))
    os.remove(path)
    assert(code == 0, "cannot build the Flask database: " .. out .. err)
  end)

  teardown(function()
    if srv then srv:stop() end
    if flask_db then pcall(sql, DATABASE_URL, "DROP DATABASE IF EXISTS " .. flask_db) end
  end)

  it("changes nothing on a dry run, and reports what it would do", function()
    local before = snapshot()
    local out, code, err = import(flask_url, "--dry-run")
    assert_no_sanitizer_report(err)
    assert.equal(3, code, out .. err)
    assert.equal(before, snapshot())
    assert.matches("^moonkeep import: dry run, nothing is written\n", out)
    assert.matches(("admin %d: would get a new id %%(id %d is taken in moonkeep%%)"):format(taken.admin_id,
                   taken.admin_id), out)
    assert.matches(("admins: %d would be imported"):format(N_ADMINS - 4), out)
    assert.matches(("dry run: %d rows would be imported, 0 are already imported, 8 would be refused")
                   :format(IMPORTED), out)
    assert.not_matches("argon2", err)
  end)

  it("imports, keeping ids where free, and refuses conflicting rows one by one", function()
    local out, code, err = import(flask_url)
    assert_no_sanitizer_report(err)
    assert.equal(3, code, out .. err)
    local a, u = base + N_ADMINS, base + N_USERS
    local expect = {
      ("admin %d: refused: email is the same address as admin %d of the source"):format(a - 5, base + 1),
      ("admin %d: refused: name must be 3 to 32 characters"):format(a - 4),
      ("admin %d: refused: email is too long %%(at most 254 characters%%)"):format(a - 3),
      ("admin %d: refused: name is the same name as admin %d of the source"):format(a - 2, base + 2),
      ("admin %d: note: its password breaks the rules for new passwords"):format(a - 1),
      ("admin %d: imported as admin %%d+ %%(id %d is taken in moonkeep%%)"):format(taken.admin_id, taken.admin_id),
      ("user %d: refused: email is the same address as user %d of the source"):format(u - 4, base + 1),
      ("user %d: refused: email is the same address as user %d of the source"):format(u - 3, base + 2),
      ("user %d: refused: email is too long"):format(u - 2),
      ("user %d: refused: email is already in use by user %d"):format(u - 1, taken.user_email_owner),
      ("user %d: imported as user %%d+ %%(id %d is taken in moonkeep%%)"):format(taken.user_id, taken.user_id),
      ("admins: %d imported %%(%d with their own id, 1 with a new id%%), 0 already imported, 4 refused")
        :format(N_ADMINS - 4, N_ADMINS - 5),
      ("users: %d imported %%(%d with their own id, 1 with a new id%%), 0 already imported, 4 refused")
        :format(N_USERS - 4, N_USERS - 5),
      ("done: %d rows imported, 0 already imported, 8 refused"):format(IMPORTED),
    }
    for _, pattern in ipairs(expect) do assert.matches(pattern, out) end

    -- admins: confirmed, argon2id hashes at the configured parameters, ids kept
    local row = sql(DATABASE_URL, ("SELECT email, name, confirmed, password_hash LIKE '$argon2id$v=19$m=19456,t=2,%%'"
      .. " FROM admins WHERE id = %d"):format(base + 7))
    assert.equal(("adm7-%s@example.com|adm7_%s|t|t"):format(tag, tag), row)
    assert.equal("0", sql(DATABASE_URL, ("SELECT count(*) FROM admins WHERE email LIKE '%%%s%%'"
      .. " AND (NOT confirmed OR password_hash NOT LIKE '$argon2id$%%')"):format(tag)))
    assert.equal(tostring(N_ADMINS - 4), sql(DATABASE_URL, ("SELECT count(*) FROM admins WHERE email LIKE '%%-%s@%%'")
      :format(tag)))
    -- users: created_by null, no name, active as it was
    assert.equal(("user3-%s@example.com|f||"):format(tag), sql(DATABASE_URL,
      ("SELECT email, active, name, created_by FROM users WHERE id = %d"):format(base + 3)))
    assert.equal(("user4-%s@example.com|t||"):format(tag), sql(DATABASE_URL,
      ("SELECT email, active, name, created_by FROM users WHERE id = %d"):format(base + 4)))
    assert.equal("f", sql(DATABASE_URL, ("SELECT active FROM users WHERE email = 'moved-%s@example.com'"):format(tag)))
    -- one event per imported row, by nobody, with the run's id
    local run_id = err:match('"request_id":"(import%-%x+)"')
    assert.is_string(run_id, "the log names the run")
    assert.equal(tostring(IMPORTED), sql(DATABASE_URL,
      ("SELECT count(*) FROM audit_events WHERE request_id = '%s' AND actor_id IS NULL"
       .. " AND action IN ('admin.imported', 'user.imported')"):format(run_id)))
    local lines = 0
    for line in err:gmatch("[^\n]+") do
      local l = cjson.decode(line)
      if l and l.msg == "audit" and l.request_id == run_id then lines = lines + 1 end
    end
    assert.equal(IMPORTED, lines, "one log line per event")
    assert.not_matches("flask password", err)
  end)

  it("has moved the sequences past the ids it kept", function()
    local s = api.admin_session(srv)
    -- past the largest id kept, and past the new ids given after it
    assert.is_true(s.admin.id > base + N_ADMINS, tostring(s.admin.id))
    local res = srv:request("POST", "/users", {headers = api.bearer(s.access), body = {email = "after-" .. tag .. "@example.com"}})
    assert.equal(201, res.status, res.body)
    assert.is_true(res.json.user.id > base + N_USERS - 4, tostring(res.json.user.id))
  end)

  it("changes nothing the second time, and says so", function()
    local before = snapshot()
    local out, code, err = import(flask_url)
    assert_no_sanitizer_report(err)
    assert.equal(3, code, out .. err)
    assert.equal(before, snapshot())
    assert.matches(("nothing changed: %d rows already imported, 8 refused"):format(IMPORTED), out)
    assert.matches(("admins: 0 imported %%(0 with their own id, 0 with a new id%%), %d already imported, 4 refused")
                   :format(N_ADMINS - 4), out)
  end)

  it("lets an imported admin log in with the old password, through the real server", function()
    for _, case in ipairs({
      {("adm7-%s@example.com"):format(tag), "flask password 7"},
      {("short-%s@example.com"):format(tag), "abc"},
      {("ADM12-%s@example.com"):format(tag), "flask password 12"},
      {("idclash-%s@example.com"):format(tag), "id clash pw"},
    }) do
      local res = srv:request("POST", "/auth/login", {body = {email = case[1], password = case[2]}})
      assert.equal(200, res.status, case[1] .. ": " .. res.body)
      assert.is_true(res.json.admin.confirmed)
    end
    local res = srv:request("POST", "/auth/login", {body = {email = ("adm7-%s@example.com"):format(tag),
                                                           password = "flask password 8"}})
    assert.equal(401, res.status)
    res = srv:request("POST", "/auth/login", {body = {email = ("empty-%s@example.com"):format(tag),
                                                     password = "whatever pw"}})
    assert.equal(401, res.status, "a refused admin was not imported")
  end)

  it("shows each imported row in the audit trail, by nobody", function()
    local s = api.admin_session(srv)
    local res = srv:request("GET", ("/audit?action=admin.imported&target=admin:%d"):format(base + 7),
                            {headers = api.bearer(s.access)})
    assert.equal(200, res.status, res.body)
    assert.equal(1, #res.json.events)
    local e = res.json.events[1]
    assert.equal(cjson.null, e.actor_id)
    assert.same({source_id = base + 7, email = ("adm7-%s@example.com"):format(tag), name = ("adm7_%s"):format(tag)},
                e.detail)
    assert.matches("^import%-%x+$", e.request_id)
  end)

  it("answers a bad command line with its usage, and an unreachable source with status 1", function()
    local out, code, err = run(sh(BIN) .. " import --dry-run")
    assert.equal(2, code, out .. err)
    assert.matches("usage: moonkeep import %-%-from", err)
    out, code, err = import(database_url(DATABASE_URL, "no_such_db_" .. tag))
    assert.equal(1, code, out .. err)
    assert.equal("", out)
    assert.matches("cannot connect to the source database", err)
    assert_no_sanitizer_report(err)
  end)
end)
