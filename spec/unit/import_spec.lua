-- tools/import.lua (`moonkeep import`) against the fake database: what is
-- imported, refused and reported, and that a second run changes nothing.
-- spec/e2e/import_spec.lua runs the real command on a real Flask schema.
local kit = require "support.kit"
local null = require("cjson.safe").null

describe("moonkeep import", function()
  local k, import

  before_each(function()
    k = kit.new()
    import = require "tools.import"
  end)

  local function admin(id, email, name, password)
    return {id = tostring(id), email = email, name = name == nil and null or name, password = password or "old secret pw"}
  end

  local function user(id, email, active)
    return {id = tostring(id), email = email, active = active == nil and "true" or active}
  end

  local function run(source, options)
    options = options or {}
    options.run_id = options.run_id or "import-spec"
    return import.run(source, options)
  end

  local function find(list, key, value)
    for _, row in ipairs(list) do
      if row[key] == value then return row end
    end
  end

  it("imports admins confirmed, with a hash of their password, and users, keeping ids", function()
    local report, status = run({
      admins = {admin(3, "Ada@Example.com ", "ada", "plain text pw")},
      users = {user(7, "grace@example.com", "true"), user(9, "Hopper@example.com", "f")},
    })
    assert.equal(import.OK, status, report)
    local a = find(k.db.state.admins, "id", 3)
    assert.equal("ada@example.com", a.email)
    assert.is_true(a.confirmed)
    assert.equal(k.password.hash("plain text pw"), a.password_hash)
    local u = find(k.db.state.users, "id", 9)
    assert.equal("hopper@example.com", u.email)
    assert.is_false(u.active)
    assert.is_nil(u.created_by)
    assert.is_nil(u.name)
    assert.is_true(find(k.db.state.users, "id", 7).active)
    assert.matches("admins: 1 imported %(1 with their own id, 0 with a new id%), 0 already imported, 0 refused",
                   report)
    assert.matches("done: 3 rows imported, 0 already imported, 0 refused", report)
  end)

  it("records an event per imported row, by nobody, with the run's id", function()
    run({admins = {admin(1, "a@example.com", "ada")}, users = {user(2, "u@example.com")}})
    local events = k.db.state.audit
    assert.equal(2, #events)
    assert.equal("admin.imported", events[1].action)
    assert.is_nil(events[1].actor_id)
    assert.equal("import-spec", events[1].request_id)
    assert.same({source_id = 1, email = "a@example.com", name = "ada"}, events[1].detail)
    assert.equal("user.imported", events[2].action)
    assert.equal(2, events[2].target_id)
    local logged = 0
    for _, line in ipairs(k.log.lines) do if line.msg == "audit" then logged = logged + 1 end end
    assert.equal(2, logged)
  end)

  it("refuses conflicting rows one by one with the reasons, and imports the rest", function()
    local long = string.rep("a", 250) .. "@example.com"
    local report, status = run({
      admins = {
        admin(1, "ada@example.com", "ada"),
        admin(2, "ADA@example.com", "ada2"),          -- the same address in another case
        admin(3, "bob@example.com", ""),              -- empty name
        admin(4, long, "long"),                      -- over-long email
        admin(5, "carol@example.com", "ADA"),         -- the same name
        admin(6, "dan@example.com", "dan", ""),       -- empty password
        admin(7, "not an address", "eve"),
        admin(8, "fred@example.com", "fred"),
      },
      users = {user(1, "u@example.com"), user(2, " U@EXAMPLE.COM"), user(3, long), user(4, "v@example.com", "maybe")},
    })
    assert.equal(import.REFUSED, status)
    assert.same({1, 8}, {k.db.state.admins[1].id, k.db.state.admins[2].id})
    assert.equal(2, #k.db.state.admins)
    assert.equal(1, #k.db.state.users)
    assert.matches("admin 2: refused: email is the same address as admin 1 of the source", report)
    assert.matches("admin 3: refused: name must be 3 to 32 characters", report)
    assert.matches("admin 4: refused: email is too long %(at most 254 characters%)", report)
    assert.matches("admin 5: refused: name is the same name as admin 1 of the source", report)
    assert.matches("admin 6: refused: password must not be empty", report)
    assert.matches("admin 7: refused: email is not a valid email address", report)
    assert.matches("user 2: refused: email is the same address as user 1", report)
    assert.matches("user 3: refused: email is too long", report)
    assert.matches("user 4: refused: active must be true or false", report)
    assert.matches("admins: 2 imported %(2 with their own id, 0 with a new id%), 0 already imported, 6 refused", report)
  end)

  it("gives a row whose id is taken a new id, past every id it kept", function()
    k:seed_admin({email = "owner@example.com", name = "owner"}) -- id 1
    local report = run({admins = {admin(1, "ada@example.com", "ada"), admin(5, "bob@example.com", "bob")}, users = {}})
    local ada = find(k.db.state.admins, "email", "ada@example.com")
    assert.equal(6, ada.id)
    assert.equal(5, find(k.db.state.admins, "email", "bob@example.com").id)
    assert.matches("admin 1: imported as admin 6 %(id 1 is taken in moonkeep%)", report)
  end)

  it("refuses a row whose email or name is taken in moonkeep", function()
    k:seed_admin({email = "ada@example.com", name = "someone"})
    k:seed_admin({email = "x@example.com", name = "bob"})
    k:seed_users({{email = "u@example.com"}})
    local report, status = run({admins = {admin(10, "ada@example.com", "ada"), admin(11, "b@example.com", "BOB")},
                                users = {user(10, "u@example.com")}})
    assert.equal(import.REFUSED, status)
    assert.matches("admin 10: refused: email is already in use by admin 1", report)
    assert.matches("admin 11: refused: name is already taken by admin 2", report)
    assert.matches("user 10: refused: email is already in use by user 1", report)
  end)

  it("changes nothing the second time, and says so", function()
    k:seed_admin({email = "owner@example.com", name = "owner"}) -- takes id 1: ada gets a new id
    local source = {admins = {admin(1, "ada@example.com", "ada"), admin(2, "ADA@example.com", "x2x")},
                    users = {user(1, "u@example.com"), user(2, "w@example.com", "0")}}
    run(source)
    local admins, users, events = #k.db.state.admins, #k.db.state.users, #k.db.state.audit
    local report, status = run(source)
    assert.equal(import.REFUSED, status, "the duplicate is still refused")
    assert.equal(admins, #k.db.state.admins)
    assert.equal(users, #k.db.state.users)
    assert.equal(events, #k.db.state.audit)
    assert.matches("nothing changed: 3 rows already imported, 1 refused", report)
    assert.matches("admins: 0 imported %(0 with their own id, 0 with a new id%), 1 already imported, 1 refused", report)
  end)

  it("writes nothing on a dry run, and says what it would do", function()
    k:seed_admin({email = "owner@example.com", name = "owner"})
    local report, status = run({admins = {admin(1, "ada@example.com", "ada"), admin(2, "", "bob")},
                                users = {user(4, "u@example.com")}}, {dry_run = true})
    assert.equal(import.REFUSED, status)
    assert.equal(1, #k.db.state.admins)
    assert.equal(0, #k.db.state.users)
    assert.equal(0, #k.db.state.audit)
    assert.equal(0, k.password.hashed or 0, "no hashing on a dry run")
    assert.matches("^moonkeep import: dry run, nothing is written\n", report)
    assert.matches("admin 1: would get a new id %(id 1 is taken in moonkeep%)", report)
    assert.matches("admin 2: refused: email is required", report)
    assert.matches("dry run: 2 rows would be imported, 0 are already imported, 1 would be refused", report)
  end)

  it("notes a password that breaks the rules for new ones, and imports it", function()
    local report, status = run({admins = {admin(1, "ada@example.com", "ada", "short")}, users = {}})
    assert.equal(import.OK, status)
    assert.equal(1, #k.db.state.admins)
    assert.matches("admin 1: note: its password breaks the rules for new passwords %(must be 8 to 128", report)
  end)

  it("rolls a table back whole when the database fails, keeps the other, and fails", function()
    k.db:fail("import_user")
    local report, status = run({admins = {admin(1, "ada@example.com", "ada")},
                                users = {user(1, "u@example.com"), user(2, "v@example.com")}})
    assert.equal(import.FAILED, status)
    assert.equal(1, #k.db.state.admins)
    assert.equal(0, #k.db.state.users)
    assert.matches("users: FAILED, nothing of this table was written: .*unavailable", report)
    assert.matches("import FAILED", report)
  end)

  it("reads the Flask schema with one statement per table", function()
    assert.same({"admins", "users"}, {import.SOURCES[1][1], import.SOURCES[2][1]})
    assert.matches("FROM admins ORDER BY id$", import.SOURCES[1][2])
  end)
end)
