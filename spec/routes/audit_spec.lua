-- The audit trail (lib/audit.lua, routes/audit.lua, docs/audit.md): what
-- each change records, that a change that does not happen records nothing,
-- the log line after the commit, and GET /audit with its filters.
local kit = require "support.kit"
local null = require("cjson.safe").null

local PASSWORD = kit.PASSWORD

describe("the audit trail", function()
  local k

  before_each(function()
    k = kit.new()
  end)

  -- The events in the fake database, oldest first, or those of `action`.
  local function events(action)
    local out = {}
    for _, e in ipairs(k.db.state.audit) do
      if action == nil or e.action == action then out[#out + 1] = e end
    end
    return out
  end

  local function last(action)
    local list = events(action)
    return list[#list]
  end

  local function audit_lines()
    local out = {}
    for _, line in ipairs(k.log.lines) do
      if line.msg == "audit" then out[#out + 1] = line.fields end
    end
    return out
  end

  local function login(email, password)
    return k:post("/auth/login", {json = {email = email, password = password or PASSWORD}})
  end

  describe("records", function()
    it("a registration, anonymous, with the request id and the client address", function()
      local res = k:post("/auth/register", {json = {email = "ada@example.com", name = "ada", password = PASSWORD},
                                           headers = {["X-Request-Id"] = "ignored-by-the-kit"}})
      assert.status(201, res)
      local e = last("admin.registered")
      assert.is_nil(e.actor_id)
      assert.equal("admin", e.target_type)
      assert.equal(res.json.admin.id, e.target_id)
      assert.matches("^spec%-%d+$", e.request_id)
      assert.equal("127.0.0.1", e.client)
      assert.same({email = "ada@example.com", name = "ada"}, e.detail)
    end)

    it("prefers the client address the host worked out to the socket peer", function()
      local req = k:build_request("POST", "/auth/register", {json = {email = "ada@example.com", name = "ada",
                                                                    password = PASSWORD}})
      req.client_addr = "203.0.113.7"
      assert.status(201, k:handle(req))
      assert.equal("203.0.113.7", last("admin.registered").client)
    end)

    it("a confirmation", function()
      k:post("/auth/register", {json = {email = "ada@example.com", name = "ada", password = PASSWORD}})
      local token = kit.link_token(k:last_mail())
      assert.status(200, k:get("/auth/confirm?token=" .. token))
      local e = last("admin.confirmed")
      assert.equal(1, e.target_id)
      assert.is_nil(e.actor_id)
    end)

    it("a login by the admin who logged in, with the session", function()
      local admin = k:seed_admin({email = "ada@example.com"})
      local res = login("ada@example.com")
      assert.status(200, res)
      local e = last("admin.login")
      assert.equal(admin.id, e.actor_id)
      assert.equal(admin.id, e.target_id)
      assert.equal(k.db.state.sessions[1].id, e.detail.session_id)
    end)

    it("a re-hash at login in the login's detail", function()
      k:seed_admin({email = "ada@example.com", old_hash = true})
      assert.status(200, login("ada@example.com"))
      assert.is_true(last("admin.login").detail.rehashed)
    end)

    it("a failed login: wrong password and unknown email, anonymous", function()
      local admin = k:seed_admin({email = "ada@example.com"})
      assert.status(401, login("ada@example.com", "wrong password"))
      assert.status(401, login("nobody@example.com", "wrong password"))
      local list = events("admin.login_failed")
      assert.equal(2, #list)
      assert.same({email = "ada@example.com", reason = "wrong_password"}, list[1].detail)
      assert.equal(admin.id, list[1].target_id)
      assert.is_nil(list[1].actor_id)
      assert.same({email = "nobody@example.com", reason = "unknown_email"}, list[2].detail)
      assert.is_nil(list[2].target_id)
    end)

    it("no failed login for a right password (unconfirmed, or a successful login)", function()
      k:seed_admin({email = "ada@example.com", confirmed = false})
      assert.status(403, login("ada@example.com"))
      assert.equal(0, #events("admin.login_failed"))
    end)

    it("the refused attempts of a rate-limited window as one event that counts them", function()
      k = kit.new({env = {LOGIN_FAILURE_LIMIT = "2"}})
      k:seed_admin({email = "ada@example.com"})
      for _ = 1, 2 do assert.status(401, login("ada@example.com", "wrong password")) end
      for _ = 1, 5 do assert.status(429, login("ada@example.com", "wrong password")) end
      local list = events("admin.login_failed")
      assert.equal(3, #list, "two failures, then one event for the window")
      assert.equal("rate_limited", list[3].detail.reason)
      assert.equal(5, list[3].detail.refused)
      local logged = 0
      for _, f in ipairs(audit_lines()) do
        if f.action == "admin.login_failed" then logged = logged + 1 end
      end
      assert.equal(3, logged, "the window's event is logged once, when it starts")
      -- the next window has an event of its own
      k:advance(900)
      for _ = 1, 3 do login("ada@example.com", "wrong password") end
      list = events("admin.login_failed")
      assert.equal(6, #list)
      assert.equal(1, list[6].detail.refused)
    end)

    it("a refresh, and the reuse of a rotated refresh token, which is anonymous", function()
      local s = k:signed_in()
      local res = k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      assert.status(200, res)
      local e = last("admin.refreshed")
      assert.equal(s.admin.id, e.actor_id)
      assert.equal(k.db.state.sessions[1].id, e.detail.session_id)
      assert.status(401, k:post("/auth/refresh", {json = {refresh_token = s.refresh}}))
      e = last("admin.refresh_reuse")
      assert.is_nil(e.actor_id)
      assert.equal(s.admin.id, e.target_id)
      -- the session is gone: a third try revokes nothing and records nothing
      k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      assert.equal(1, #events("admin.refresh_reuse"))
    end)

    it("a logout and a logout everywhere", function()
      local s1 = k:signed_in({email = "ada@example.com"})
      local s2 = k:post("/auth/login", {json = {email = "ada@example.com", password = PASSWORD}}).json
      assert.status(204, k:post("/auth/logout", {token = s1.access}))
      assert.equal(s1.admin.id, last("admin.logout").actor_id)
      assert.status(204, k:post("/auth/logout?all=true", {token = s2.access_token}))
      assert.same({sessions_ended = 1}, last("admin.logout_all").detail)
    end)

    it("a name change with the old and new name, an email change, a password change", function()
      local s = k:signed_in({email = "ada@example.com", name = "ada"})
      k:post("/auth/login", {json = {email = "ada@example.com", password = PASSWORD}})
      local res = k:put("/auth/me", {token = s.access, json = {
        name = "ada2", email = "ada2@example.com", password = "a brand new password", current_password = PASSWORD,
      }})
      assert.status(200, res)
      assert.same({changes = {name = {old = "ada", new = "ada2"}}}, last("admin.updated").detail)
      assert.same({changes = {email = {old = "ada@example.com", new = "ada2@example.com"}}},
                  last("admin.email_changed").detail)
      local e = last("admin.password_changed")
      assert.same({sessions_ended = 1}, e.detail, "the other session")
      assert.equal(s.admin.id, e.actor_id)
      assert.not_matches("argon2", k.log.text())
      assert.not_matches("%$fake%$", k.log.text())
    end)

    it("a wrong current_password as a failed login by that admin", function()
      local s = k:signed_in({email = "ada@example.com"})
      assert.status(422, k:put("/auth/me", {token = s.access, json = {email = "x@example.com",
                                                                     current_password = "wrong one"}}))
      local e = last("admin.login_failed")
      assert.equal("wrong_current_password", e.detail.reason)
      assert.equal(s.admin.id, e.actor_id)
      assert.is_nil(last("admin.email_changed"))
    end)

    it("a password reset, anonymous", function()
      local admin = k:seed_admin({email = "ada@example.com"})
      k:post("/auth/password/forgot", {json = {email = "ada@example.com"}})
      local token = kit.link_token(k:last_mail())
      assert.status(204, k:post("/auth/password/reset", {json = {token = token, password = "a brand new password"}}))
      local e = last("admin.password_reset")
      assert.is_nil(e.actor_id)
      assert.equal(admin.id, e.target_id)
    end)

    it("the deletion of an admin, whose events stay", function()
      local s = k:signed_in({email = "ada@example.com", name = "ada"})
      assert.status(204, k:delete("/auth/me", {token = s.access, json = {current_password = PASSWORD}}))
      local e = last("admin.deleted")
      assert.same({email = "ada@example.com", name = "ada"}, e.detail)
      assert.equal(s.admin.id, e.actor_id)
      assert.is_table(last("admin.login"), "the deleted admin's login is still there")
    end)

    it("a user created, updated (the fields that changed) and deleted", function()
      local s = k:signed_in()
      local id = k:post("/users", {token = s.access, json = {email = "grace@example.com"}}).json.user.id
      assert.same({email = "grace@example.com", name = null, active = true}, last("user.created").detail)
      assert.status(200, k:patch("/users/" .. id, {token = s.access, json = {name = "Grace", active = true}}))
      assert.same({changes = {name = {old = null, new = "Grace"}}}, last("user.updated").detail)
      assert.status(200, k:put("/user?id=" .. id, {token = s.access, json = {name = "Grace"}}))
      assert.equal(1, #events("user.updated"), "nothing changed: no event")
      assert.status(200, k:delete("/users/" .. id, {token = s.access}))
      local e = last("user.deleted")
      assert.equal(id, e.target_id)
      assert.equal(s.admin.id, e.actor_id)
      assert.equal("grace@example.com", e.detail.email)
    end)
  end)

  describe("records nothing for a change that does not happen", function()
    it("a user whose email is taken", function()
      local s = k:signed_in()
      k:post("/users", {token = s.access, json = {email = "grace@example.com"}})
      assert.status(409, k:post("/users", {token = s.access, json = {email = "GRACE@example.com"}}))
      assert.equal(1, #events("user.created"))
    end)

    it("a change rolled back with its transaction, nor logs it", function()
      local s = k:signed_in({email = "ada@example.com"})
      local before = #k.db.state.audit
      k.db:fail("COMMIT")
      assert.status(503, k:put("/auth/me", {token = s.access, json = {name = "ada2"}}))
      assert.equal(before, #k.db.state.audit)
      assert.is_nil(last("admin.updated"))
      for _, f in ipairs(audit_lines()) do assert.not_equal("admin.updated", f.action) end
    end)

    it("an update of a user that does not exist", function()
      local s = k:signed_in()
      assert.status(404, k:put("/users/99", {token = s.access, json = {name = "x"}}))
      assert.is_nil(last("user.updated"))
    end)
  end)

  describe("logs", function()
    it("one line per event, after it was written, with the event's fields", function()
      local s = k:signed_in()
      k:post("/users", {token = s.access, json = {email = "grace@example.com", name = "Grace"}})
      local lines = audit_lines()
      local line = lines[#lines]
      local e = last("user.created")
      assert.equal("user.created", line.action)
      assert.equal(e.id, line.audit_id)
      assert.equal(s.admin.id, line.actor_id)
      assert.equal("user", line.target_type)
      assert.equal(e.target_id, line.target_id)
      assert.equal("127.0.0.1", line.client)
      assert.equal("Grace", line.detail.name)
    end)
  end)

  describe("GET /audit", function()
    local s

    before_each(function()
      s = k:signed_in({email = "ada@example.com"})
    end)

    local function get(query)
      return k:get("/audit" .. (query or ""), {token = s.access})
    end

    it("returns 401 without a token", function()
      assert.status(401, k:get("/audit"))
    end)

    it("lists the events newest first, each as API.md's objects", function()
      local user = k:post("/users", {token = s.access, json = {email = "grace@example.com"}}).json.user
      local res = get()
      assert.status(200, res)
      assert.equal(null, res.json.next_cursor)
      local e = res.json.events[1]
      assert.equal("user.created", e.action)
      assert.equal("admin.login", res.json.events[2].action)
      assert.same({"action", "actor_id", "at", "client", "detail", "id", "request_id", "target_id", "target_type"},
                  (function()
                    local keys = {}
                    for key in pairs(e) do keys[#keys + 1] = key end
                    table.sort(keys)
                    return keys
                  end)())
      assert.equal(user.id, e.target_id)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", e.at)
      assert.matches('"detail":{', res.body, 1, true)
    end)

    it("answers an empty page with [] and no cursor", function()
      local res = get("?action=user.deleted")
      assert.status(200, res)
      assert.matches('"events":[]', res.body, 1, true)
      assert.equal(null, res.json.next_cursor)
    end)

    it("pages with limit and an opaque cursor, newest first", function()
      for i = 1, 5 do k:post("/users", {token = s.access, json = {email = ("u%d@example.com"):format(i)}}) end
      local seen, cursor = {}, nil
      for _ = 1, 10 do
        local res = get("?action=user.created&limit=2" .. (cursor and "&cursor=" .. kit.url_encode(cursor) or ""))
        assert.status(200, res)
        for _, e in ipairs(res.json.events) do seen[#seen + 1] = e.detail.email end
        cursor = res.json.next_cursor
        if cursor == null then break end
      end
      assert.same({"u5@example.com", "u4@example.com", "u3@example.com", "u2@example.com", "u1@example.com"}, seen)
    end)

    it("refuses a cursor of another list, and a bad limit, with 400", function()
      k:seed_users(3)
      local users_cursor = k:get("/users?limit=1", {token = s.access}).json.next_cursor
      assert.status(400, get("?cursor=" .. kit.url_encode(users_cursor)))
      assert.status(400, get("?limit=0"))
      assert.status(400, get("?limit=101"))
      assert.status(400, get("?limit=x"))
    end)

    it("filters by actor, action and target", function()
      local other = k:signed_in({email = "grace@example.com"})
      local id = k:post("/users", {token = other.access, json = {email = "u@example.com"}}).json.user.id
      k:delete("/users/" .. id, {token = s.access})
      local res = get("?actor=" .. other.admin.id)
      assert.same({"user.created", "admin.login"}, {res.json.events[1].action, res.json.events[2].action})
      assert.equal(2, #res.json.events)
      res = get("?action=user.deleted")
      assert.equal(1, #res.json.events)
      assert.equal(s.admin.id, res.json.events[1].actor_id)
      res = get("?target=user:" .. id)
      assert.same({"user.deleted", "user.created"}, {res.json.events[1].action, res.json.events[2].action})
      res = get("?target=admin:" .. other.admin.id .. "&action=admin.login")
      assert.equal(1, #res.json.events)
      assert.equal(0, #get("?target=user:" .. id .. "&actor=" .. other.admin.id .. "&action=user.deleted").json.events)
    end)

    it("filters by time: since is inclusive, until exclusive", function()
      k:advance(60)
      k:post("/users", {token = s.access, json = {email = "u@example.com"}})
      local login_at = "2026-12-01T13:45:00Z" -- kit.START_TIME
      local res = get("?since=2026-12-01T13:46:00Z")
      assert.equal(1, #res.json.events)
      assert.equal("user.created", res.json.events[1].action)
      res = get("?until=2026-12-01T13:46:00Z")
      assert.equal(1, #res.json.events)
      assert.equal(login_at, res.json.events[1].at)
      res = get("?since=" .. kit.url_encode("2026-12-01T14:45:30+01:00") .. "&until=2026-12-01T13:47:00.5Z")
      assert.equal(1, #res.json.events)
      assert.equal(0, #get("?since=2026-12-01T13:50:00Z").json.events)
    end)

    it("returns 422 naming each malformed filter", function()
      local res = get("?action=user.exploded&target=group:1&since=yesterday&until=2026-02-30T00:00:00Z&actor=0")
      assert.status(422, res)
      assert.equal("validation_failed", res.json.error.code)
      local fields = res.json.error.fields
      assert.is_string(fields.action)
      assert.equal("must be user:<id> or admin:<id>", fields.target)
      assert.is_string(fields.since)
      assert.is_string(fields["until"])
      assert.is_string(fields.actor)
    end)

    it("returns 422 for a target without an id or with a bad one", function()
      for _, t in ipairs({"user:", "user", "user:0", "user:1.5", "USER:1", "user:99999999999999999999"}) do
        local res = get("?target=" .. kit.url_encode(t))
        assert.status(422, res)
        assert.is_string(res.json.error.fields.target, t)
      end
    end)

    it("returns 503 when the database is down", function()
      k.db:fail("list_audit_00000")
      assert.status(503, get())
    end)
  end)
end)
