-- lib/store.lua: database errors become responses in one place.
local kit = require "support.kit"

describe("store", function()
  local k, store

  before_each(function()
    k = kit.new()
    store = k.store
  end)

  it("maps unavailable and timeout to 503 unavailable", function()
    for _, code in ipairs({"unavailable", "timeout"}) do
      local res = store.map_error({code = code, message = "x"})
      assert.equal(503, res.status)
      assert.equal("unavailable", res.body.error.code)
    end
  end)

  it("maps a unique violation to 409 with the field its constraint is about", function()
    for constraint, field in pairs({admins_email_key = "email", admins_name_key = "name", users_email_key = "email"}) do
      local res = store.map_error({code = "query", sqlstate = "23505", constraint = constraint})
      assert.equal(409, res.status)
      assert.equal("conflict", res.body.error.code)
      assert.is_string(res.body.error.fields[field])
    end
  end)

  it("maps an unknown unique violation to 409 without fields", function()
    local res = store.map_error({code = "query", sqlstate = "23505", constraint = "something_new"})
    assert.equal(409, res.status)
    assert.is_nil(res.body.error.fields)
  end)

  it("raises on anything else, with the SQLSTATE for the log", function()
    assert.has_error(function()
      store.map_error({code = "query", sqlstate = "22P02", message = "invalid input syntax"})
    end, "database error: query (sqlstate 22P02, constraint nil): invalid input syntax")
  end)

  it("passes a response through untouched", function()
    local res = {status = 404, body = {error = {code = "not_found"}}}
    assert.equal(res, store.map_error(res))
  end)

  it("returns nil for a row that is not there", function()
    assert.same({}, {store:find_user("5")})
  end)

  it("rolls a transaction back when its function returns nil, err", function()
    local admin, err = store:transaction(function(tx)
      tx:create_admin("a@example.com", "ada", "h")
      return nil, {status = 418, body = {}}
    end)
    assert.is_nil(admin)
    assert.equal(418, err.status)
    assert.equal(0, #k.db.state.admins)
  end)

  it("rolls a transaction back and maps the error when the commit fails", function()
    k.db:fail("COMMIT")
    local ok, err = store:transaction(function(tx)
      return tx:create_admin("a@example.com", "ada", "h")
    end)
    assert.is_nil(ok)
    assert.equal(503, err.status)
    assert.equal(0, #k.db.state.admins)
  end)

  it("returns every result of a committed transaction", function()
    local a, b = store:transaction(function() return 1, 2 end)
    assert.same({1, 2}, {a, b})
  end)

  it("never returns a password hash with an admin", function()
    store:create_admin("a@example.com", "ada", "secret-hash")
    local admin = store:find_admin("1")
    assert.is_nil(admin.password_hash)
    local login = store:admin_login("A@example.com")
    assert.is_nil(login.admin.password_hash)
    assert.equal("secret-hash", login.password_hash)
  end)

  it("has an in-memory version of every statement in the fake database", function()
    local FakeDB = require "support.fake_db"
    for name in pairs(store.SQL) do
      assert.is_function(FakeDB.statements[name], "spec/support/fake_db.lua lacks " .. name)
    end
  end)

  it("names every statement it runs in store.SQL", function()
    for name, sql in pairs(store.SQL) do
      assert.is_string(name)
      for _, star in ipairs({"SELECT %*", "RETURNING %*", "%w%.%*"}) do
        assert.is_nil(sql:find(star), name .. " must list its columns")
      end
    end
  end)
end)

describe("views", function()
  it("writes timestamps to the second, in UTC", function()
    kit.new()
    local views = require "lib.views"
    assert.equal("2026-12-01T15:09:33Z", views.timestamp("2026-12-01T15:09:33.103857Z"))
    assert.equal("2026-12-01T15:09:33Z", views.timestamp("2026-12-01T15:09:33Z"))
    local user = views.user({id = 1, email = "u@example.com", name = "U", active = true, created_by = 2,
                             created_at = "2026-12-01T15:09:33.1Z", updated_at = "2026-12-01T15:09:34.9Z",
                             secret = "never shown"})
    assert.same({id = 1, email = "u@example.com", name = "U", active = true, created_by = 2,
                 created_at = "2026-12-01T15:09:33Z", updated_at = "2026-12-01T15:09:34Z"}, user)
  end)
end)
