-- routes/users.lua: /user?id=N, /users, /users/{id}.
local kit = require "support.kit"
local null = require("cjson.safe").null

describe("users routes", function()
  local k, s

  before_each(function()
    k = kit.new()
    s = k:signed_in()
  end)

  local function as_admin(opts)
    opts = opts or {}
    opts.token = opts.token or s.access
    return opts
  end

  describe("POST /users", function()
    it("creates a user and returns 201 with it", function()
      local res = k:post("/users", as_admin{json = {email = " Grace@Example.com ", name = "Grace Hopper"}})
      assert.status(201, res)
      local user = res.json.user
      assert.equal("grace@example.com", user.email)
      assert.equal("Grace Hopper", user.name)
      assert.is_true(user.active)
      assert.equal(s.admin.id, user.created_by)
      assert.equal("2026-12-01T13:45:00Z", user.created_at)
      assert.equal("/users/" .. user.id, res:header("Location"))
    end)

    it("returns exactly the fields of a User", function()
      local res = k:post("/users", as_admin{json = {email = "u@example.com"}})
      local keys = {}
      for key in pairs(res.json.user) do keys[#keys + 1] = key end
      table.sort(keys)
      assert.same({"active", "created_at", "created_by", "email", "id", "name", "updated_at"}, keys)
    end)

    it("writes a missing name as null", function()
      local res = k:post("/users", as_admin{json = {email = "u@example.com"}})
      assert.truthy(res.body:find('"name":null', 1, true))
    end)

    it("is the same as POST /user", function()
      local res = k:post("/user", as_admin{json = {email = "u@example.com", active = false}})
      assert.status(201, res)
      assert.is_false(res.json.user.active)
    end)

    it("returns 401 without a token", function()
      local res = k:post("/users", {json = {email = "u@example.com"}})
      assert.status(401, res)
      assert.equal("unauthorized", res.json.error.code)
      assert.equal("Bearer", res:header("WWW-Authenticate"))
    end)

    it("returns 422 naming the fields that break a rule", function()
      local res = k:post("/users", as_admin{json = {email = 123, name = string.rep("n", 101), active = "yes"}})
      assert.status(422, res)
      assert.equal("validation_failed", res.json.error.code)
      assert.same({email = "must be a string", name = "is too long (at most 100 characters)",
                   active = "must be true or false"}, res.json.error.fields)
    end)

    it("returns 409 conflict naming the email when it is taken, whatever its case", function()
      k:post("/users", as_admin{json = {email = "u@example.com"}})
      local res = k:post("/users", as_admin{json = {email = "U@EXAMPLE.com"}})
      assert.status(409, res)
      assert.equal("conflict", res.json.error.code)
      assert.same({email = "is already in use"}, res.json.error.fields)
    end)

    it("returns 400 invalid_json for a body that is not JSON", function()
      local res = k:post("/users", as_admin{body = "{email:", headers = {["Content-Type"] = "application/json"}})
      assert.status(400, res)
      assert.equal("invalid_json", res.json.error.code)
    end)

    it("returns 400 invalid_json for a JSON array", function()
      local res = k:post("/users", as_admin{body = "[]", headers = {["Content-Type"] = "application/json"}})
      assert.status(400, res)
      assert.equal("invalid_json", res.json.error.code)
    end)

    it("returns 415 for a body that is not JSON by its Content-Type", function()
      local res = k:post("/users", as_admin{body = "email=u@example.com",
                                            headers = {["Content-Type"] = "application/x-www-form-urlencoded"}})
      assert.status(415, res)
      assert.equal("unsupported_media_type", res.json.error.code)
    end)

    it("returns 503 unavailable when the database is down", function()
      k.db:fail("create_user")
      local res = k:post("/users", as_admin{json = {email = "u@example.com"}})
      assert.status(503, res)
      assert.equal("unavailable", res.json.error.code)
    end)

    it("answers 500 without details for an unexpected database error", function()
      k.db:fail("create_user", {code = "query", sqlstate = "42P01", message = 'relation "users" does not exist'})
      local res = k:post("/users", as_admin{json = {email = "u@example.com"}})
      assert.status(500, res)
      assert.equal('{"error":{"code":"internal","message":"internal server error"}}', res.body)
      assert.matches("42P01", res.error, 1, true)
    end)
  end)

  describe("GET /user?id= and /users/{id}", function()
    local user

    before_each(function()
      user = k:post("/users", as_admin{json = {email = "u@example.com", name = "U"}}).json.user
    end)

    it("returns the user by query id", function()
      local res = k:get("/user?id=" .. user.id, as_admin())
      assert.status(200, res)
      assert.same(user, res.json.user)
    end)

    it("returns the user by path id", function()
      local res = k:get("/users/" .. user.id, as_admin())
      assert.status(200, res)
      assert.same(user, res.json.user)
    end)

    it("returns 404 not_found for an unknown id", function()
      local res = k:get("/users/999", as_admin())
      assert.status(404, res)
      assert.equal("not_found", res.json.error.code)
      assert.status(404, k:get("/user?id=9223372036854775807", as_admin()))
    end)

    for _, bad in ipairs({"0", "-1", "1.5", "abc", "9223372036854775808", "", "1e3"}) do
      it("returns 400 bad_request for id=" .. bad, function()
        local res = k:get("/user?id=" .. bad, as_admin())
        assert.status(400, res)
        assert.equal("bad_request", res.json.error.code)
        if bad ~= "" then assert.status(400, k:get("/users/" .. bad, as_admin())) end
      end)
    end

    it("returns 400 bad_request when the id is missing", function()
      local res = k:get("/user", as_admin())
      assert.status(400, res)
      assert.equal("the id query parameter is required", res.json.error.message)
    end)

    it("returns 401 token_expired for an expired access token", function()
      k:advance(k.config.access_ttl + 1)
      local res = k:get("/users/" .. user.id, as_admin())
      assert.status(401, res)
      assert.equal("token_expired", res.json.error.code)
      assert.equal("Bearer", res:header("WWW-Authenticate"))
    end)

    it("returns 401 for a refresh token used as an access token", function()
      local res = k:get("/users/" .. user.id, {token = s.refresh})
      assert.status(401, res)
      assert.equal("unauthorized", res.json.error.code)
    end)

    it("returns 401 for a token that is not a JWT of this server", function()
      assert.status(401, k:get("/users/" .. user.id, {token = "garbage"}))
      local forged = k.jwt.encode({sub = "1", sid = "1", typ = "access", iss = "moonkeep", exp = 1e12})
      forged = forged:gsub("%.[^.]+$", ".c2lnbmF0dXJl")
      assert.status(401, k:get("/users/" .. user.id, {token = forged}))
    end)

    it("returns 401 for a malformed Authorization header", function()
      local res = k:get("/users/" .. user.id, {headers = {Authorization = "Basic YTpi"}})
      assert.status(401, res)
      res = k:get("/users/" .. user.id, {headers = {Authorization = "Bearer"}})
      assert.status(401, res)
    end)

    it("checks the session with one query per request", function()
      local before = k.db:count("session_live")
      k:get("/users/" .. user.id, as_admin())
      assert.equal(before + 1, k.db:count("session_live"))
    end)

    it("reads the user in the session check's query (reads_user), in both forms of the route", function()
      local before = k.db:count("find_user")
      assert.status(200, k:get("/users/" .. user.id, as_admin()))
      assert.status(200, k:get("/user?id=" .. user.id, as_admin()))
      assert.status(200, k:request("HEAD", "/users/" .. user.id, as_admin()))
      assert.status(404, k:get("/users/" .. (user.id + 1000), as_admin()))
      assert.equal(before, k.db:count("find_user"))
    end)

    it("answers 400 for a bad id without reading any user", function()
      assert.status(400, k:get("/users/abc", as_admin()))
      assert.status(400, k:get("/user?id=0", as_admin()))
    end)
  end)

  describe("PUT /user?id=, PUT and PATCH /users/{id}", function()
    local user

    before_each(function()
      user = k:post("/users", as_admin{json = {email = "u@example.com", name = "U"}}).json.user
    end)

    it("updates only the fields given", function()
      k:advance(60)
      local res = k:put("/user?id=" .. user.id, as_admin{json = {active = false}})
      assert.status(200, res)
      assert.is_false(res.json.user.active)
      assert.equal("U", res.json.user.name)
      assert.equal("u@example.com", res.json.user.email)
      assert.equal("2026-12-01T13:46:00Z", res.json.user.updated_at)
    end)

    it("clears the name with null", function()
      local res = k:patch("/users/" .. user.id, as_admin{json = {name = null}})
      assert.status(200, res)
      assert.equal(null, res.json.user.name)
      assert.equal("u@example.com", res.json.user.email)
    end)

    it("changes the email, lower-cased", function()
      local res = k:put("/users/" .. user.id, as_admin{json = {email = "New@Example.com"}})
      assert.status(200, res)
      assert.equal("new@example.com", res.json.user.email)
    end)

    it("returns the user unchanged for an empty body", function()
      local res = k:patch("/users/" .. user.id, as_admin{json = {}})
      assert.status(200, res)
      assert.same(user, res.json.user)
    end)

    it("returns 409 on a taken email", function()
      k:post("/users", as_admin{json = {email = "taken@example.com"}})
      local res = k:put("/users/" .. user.id, as_admin{json = {email = "taken@example.com"}})
      assert.status(409, res)
      assert.same({email = "is already in use"}, res.json.error.fields)
    end)

    it("returns 404 for an unknown id", function()
      assert.status(404, k:put("/users/999", as_admin{json = {active = false}}))
    end)

    it("returns 422 for a field of the wrong type", function()
      local res = k:put("/users/" .. user.id, as_admin{json = {active = 1}})
      assert.status(422, res)
      assert.same({active = "must be true or false"}, res.json.error.fields)
    end)

    it("returns 400 for a bad id before reading the body", function()
      assert.status(400, k:put("/user?id=abc", as_admin{json = {active = false}}))
    end)
  end)

  describe("DELETE /user?id= and /users/{id}", function()
    it("deletes the user and returns what was deleted", function()
      local user = k:post("/users", as_admin{json = {email = "u@example.com"}}).json.user
      local res = k:delete("/users/" .. user.id, as_admin())
      assert.status(200, res)
      assert.same(user, res.json.user)
      assert.status(404, k:get("/users/" .. user.id, as_admin()))
    end)

    it("deletes by query id too", function()
      local user = k:post("/users", as_admin{json = {email = "u@example.com"}}).json.user
      assert.status(200, k:delete("/user?id=" .. user.id, as_admin()))
      assert.equal(0, #k.db.state.users)
    end)

    it("returns 404 for an unknown id", function()
      assert.status(404, k:delete("/user?id=5", as_admin()))
    end)
  end)

  describe("GET /users", function()
    it("returns an empty JSON array and a null cursor when there are none", function()
      local res = k:get("/users", as_admin())
      assert.status(200, res)
      assert.truthy(res.body:find('"users":[]', 1, true))
      assert.truthy(res.body:find('"next_cursor":null', 1, true))
    end)

    it("pages through every user in id order with opaque cursors", function()
      k:seed_users(45, s.admin.id)
      local seen, cursor, pages = {}, nil, 0
      repeat
        local target = "/users?limit=20" .. (cursor and ("&cursor=" .. kit.url_encode(cursor)) or "")
        local res = k:get(target, as_admin())
        assert.status(200, res)
        for _, user in ipairs(res.json.users) do seen[#seen + 1] = user.id end
        cursor = res.json.next_cursor
        pages = pages + 1
      until cursor == null
      assert.equal(3, pages)
      assert.equal(45, #seen)
      for i = 1, 45 do assert.equal(i, seen[i]) end
    end)

    it("uses 20 as the default limit", function()
      k:seed_users(25)
      local res = k:get("/users", as_admin())
      assert.equal(20, #res.json.users)
      assert.is_string(res.json.next_cursor)
    end)

    it("has no next page when the last page is exactly full", function()
      k:seed_users(10)
      local res = k:get("/users?limit=10", as_admin())
      assert.equal(10, #res.json.users)
      assert.equal(null, res.json.next_cursor)
    end)

    for _, bad in ipairs({"0", "101", "abc", "-5", "2.5"}) do
      it("returns 400 for limit=" .. bad, function()
        local res = k:get("/users?limit=" .. bad, as_admin())
        assert.status(400, res)
        assert.equal("bad_request", res.json.error.code)
      end)
    end

    it("returns 400 for a cursor this server did not issue", function()
      local res = k:get("/users?cursor=dXNlcnM6MTA.0123456789abcdef0123456789abcdef", as_admin())
      assert.status(400, res)
      assert.equal("bad_request", res.json.error.code)
    end)

    it("returns 400 for a cursor of the admins list", function()
      k:seed_admin()
      k:seed_admin()
      local admins = k:get("/auth/admins?limit=1", as_admin())
      local res = k:get("/users?cursor=" .. kit.url_encode(admins.json.next_cursor), as_admin())
      assert.status(400, res)
    end)

    it("filters by ?q= on email or name, case-insensitively", function()
      k:seed_users({{email = "grace@navy.mil", name = "Grace Hopper"}, {email = "ada@example.com"},
                    {email = "alan@example.com", name = "Alan HOPPER"}})
      local res = k:get("/users?q=hopper", as_admin())
      assert.equal(2, #res.json.users)
      res = k:get("/users?q=NAVY", as_admin())
      assert.equal(1, #res.json.users)
    end)

    it("matches LIKE wildcards in ?q= literally", function()
      k:seed_users({{email = "a_b@example.com"}, {email = "axb@example.com"}, {email = "100%@example.com"}})
      assert.equal(1, #k:get("/users?q=_", as_admin()).json.users)
      assert.equal(1, #k:get("/users?q=" .. kit.url_encode("%"), as_admin()).json.users)
    end)

    it("returns 401 without a token", function()
      assert.status(401, k:get("/users"))
    end)

    it("answers HEAD like GET", function()
      assert.status(200, k:request("HEAD", "/users", as_admin()))
    end)
  end)

  describe("after the admin who created them is deleted", function()
    it("keeps the users with created_by null", function()
      local user = k:post("/users", as_admin{json = {email = "u@example.com"}}).json.user
      local other = k:signed_in()
      assert.status(204, k:delete("/auth/me", as_admin{json = {current_password = s.password}}))
      local res = k:get("/users/" .. user.id, {token = other.access})
      assert.status(200, res)
      assert.equal(null, res.json.user.created_by)
    end)
  end)
end)
