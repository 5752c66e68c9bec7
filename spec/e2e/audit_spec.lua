-- The audit trail against the real binary and PostgreSQL: each change of
-- the journey recorded (register, confirm, login, users created, updated,
-- deleted, logout), GET /audit with each filter, failed logins counted per
-- window once rate-limited, a change that fails leaving no event, and one
-- "audit" log line per event.
local server = require "support.server"
local mailbox = require "support.mailbox"
local api = require "support.api"
local cjson = require "cjson.safe"

local null = cjson.null
local bearer = api.bearer
local LIMIT = 3

local function url_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

describe("the audit trail", function()
  local srv, email, name, admin_id, access, other
  local password = "correct horse battery staple"
  local user_id, started_at

  setup(function()
    srv = server.start({env = {LOGIN_FAILURE_LIMIT = tostring(LIMIT)}})
    name = api.unique("aud")
    email = name .. "@example.com"
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  local function audit(query, token)
    local res = srv:request("GET", "/audit" .. (query or ""), {headers = bearer(token or access)})
    assert(res, "no answer")
    return res
  end

  -- The events of a query, all pages followed (every query names a filter:
  -- the database holds the other specs' events too).
  local function all_events(query, token)
    local out, cursor = {}, nil
    for _ = 1, 200 do
      local sep = query and "&" or "?"
      local res = audit((query or "") .. (cursor and (sep .. "cursor=" .. url_encode(cursor)) or ""), token)
      assert.equal(200, res.status, res.body)
      for _, e in ipairs(res.json.events) do out[#out + 1] = e end
      cursor = res.json.next_cursor
      if cursor == null then return out end
    end
    error("more than 200 pages")
  end

  -- An RFC 3339 UTC time written in another offset: +01:00, an hour later.
  local function plus_one_hour(at)
    local y, mo, d, h, rest = at:match("^(%d+)-(%d+)-(%d+)T(%d+)(:%d+:%d+)Z$")
    y, mo, d, h = tonumber(y), tonumber(mo), tonumber(d), tonumber(h) + 1
    local days = {31, (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
    if h == 24 then h, d = 0, d + 1 end
    if d > days[mo] then d, mo = 1, mo + 1 end
    if mo == 13 then mo, y = 1, y + 1 end
    return ("%04d-%02d-%02dT%02d%s+01:00"):format(y, mo, d, h, rest)
  end

  local function actions(events)
    local out = {}
    for i, e in ipairs(events) do out[i] = e.action end
    return out
  end

  it("records a registration, its confirmation and a login", function()
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = name, password = password},
                                                      headers = {["X-Request-Id"] = "audit-register-1"}})
    assert.equal(201, res.status, res.body)
    admin_id = res.json.admin.id
    local raw = assert(mailbox.message_to(srv.outbox, email), "no confirmation mail")
    local link = assert(mailbox.link(raw, srv.env.PUBLIC_URL .. "/auth/confirm?token="))
    assert.equal(200, srv:request("GET", link:sub(#srv.env.PUBLIC_URL + 1)).status)
    res = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
    assert.equal(200, res.status, res.body)
    access = res.json.access_token

    local events = all_events("?target=admin:" .. admin_id)
    assert.same({"admin.login", "admin.confirmed", "admin.registered"}, actions(events))
    local registered = events[3]
    assert.equal(null, registered.actor_id)
    assert.equal("audit-register-1", registered.request_id)
    assert.equal("127.0.0.1", registered.client)
    assert.same({email = email, name = name}, registered.detail)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", registered.at)
    started_at = registered.at
    assert.equal(admin_id, events[1].actor_id)
    assert.is_number(events[1].detail.session_id)
  end)

  it("records users created, updated (old and new values) and deleted", function()
    local res = srv:request("POST", "/users", {headers = {Authorization = "Bearer " .. access,
                                                          ["X-Request-Id"] = "audit-create-1"},
                                              body = {email = "grace-" .. name .. "@example.com"}})
    assert.equal(201, res.status, res.body)
    user_id = res.json.user.id
    res = srv:request("PATCH", "/users/" .. user_id, {headers = bearer(access), body = {name = "Grace", active = false}})
    assert.equal(200, res.status, res.body)
    res = srv:request("PUT", "/users/" .. user_id, {headers = bearer(access), body = {name = "Grace"}})
    assert.equal(200, res.status, "an update that changes nothing")
    res = srv:request("DELETE", "/users/" .. user_id, {headers = bearer(access)})
    assert.equal(200, res.status, res.body)

    local events = all_events("?target=user:" .. user_id)
    assert.same({"user.deleted", "user.updated", "user.created"}, actions(events))
    assert.equal("audit-create-1", events[3].request_id)
    assert.same({email = "grace-" .. name .. "@example.com", name = null, active = true}, events[3].detail)
    assert.same({changes = {name = {old = null, new = "Grace"}, active = {old = true, new = false}}},
                events[2].detail)
    assert.equal(false, events[1].detail.active)
    for _, e in ipairs(events) do assert.equal(admin_id, e.actor_id) end
  end)

  it("filters by actor, action, since and until, and pages newest first", function()
    other = api.admin_session(srv)
    local res = srv:request("POST", "/users", {headers = bearer(other.access), body = {email = "o-" .. name .. "@example.com"}})
    assert.equal(201, res.status)
    local mine = all_events("?actor=" .. admin_id)
    for _, e in ipairs(mine) do assert.equal(admin_id, e.actor_id) end
    assert.same({"user.deleted", "user.updated", "user.created", "admin.login"}, actions(mine))

    -- the database holds the other specs' events too: from this spec's start
    local t0 = url_encode(started_at)
    local created = all_events("?limit=100&action=user.created&since=" .. t0)
    assert.is_true(#created >= 2)
    for i, e in ipairs(created) do
      assert.equal("user.created", e.action)
      if i > 1 then assert.is_true(e.id < created[i - 1].id, "newest first") end
    end

    local paged = all_events("?actor=" .. admin_id .. "&limit=1")
    assert.same(actions(mine), actions(paged))

    -- since and until around the other admin's creation of a user
    local at = created[1].at
    local since = all_events("?action=user.created&since=" .. url_encode(at))
    assert.equal(created[1].id, since[1].id, "since is inclusive")
    for _, e in ipairs(since) do assert.is_true(e.at >= at) end
    local before = all_events("?limit=100&action=user.created&since=" .. t0 .. "&until=" .. url_encode(at))
    for _, e in ipairs(before) do assert.is_true(e.at < at) end
    assert.equal(#created, #since + #before)
    local offset = all_events("?limit=100&action=user.created&since=" .. url_encode(plus_one_hour(started_at)))
    assert.equal(#created, #offset, "the same time, written +01:00")
    assert.equal(0, #all_events("?action=user.created&since=2999-01-01T00:00:00Z"))
  end)

  it("answers 422 naming a malformed filter, and 401 without a token", function()
    local res = audit("?action=nope&target=user:x&since=2026-13-01T00:00:00Z&until=soon&actor=-1")
    assert.equal(422, res.status, res.body)
    for _, field in ipairs({"action", "target", "since", "until", "actor"}) do
      assert.is_string(res.json.error.fields[field], field)
    end
    assert.equal(401, srv:request("GET", "/audit").status)
    assert.equal(400, audit("?limit=0").status)
  end)

  it("counts failed logins: one event each, then one per window for the refused ones", function()
    local target = "?action=admin.login_failed&target=admin:" .. other.admin.id
    for _ = 1, LIMIT do
      local res = srv:request("POST", "/auth/login", {body = {email = other.email, password = "wrong password"}})
      assert.equal(401, res.status)
    end
    for _ = 1, 4 do
      local res = srv:request("POST", "/auth/login", {body = {email = other.email, password = "wrong password"}})
      assert.equal(429, res.status)
    end
    local events = all_events(target)
    assert.equal(LIMIT + 1, #events)
    assert.equal("rate_limited", events[1].detail.reason)
    assert.equal(4, events[1].detail.refused)
    assert.equal(other.email, events[1].detail.email)
    for i = 2, #events do assert.equal("wrong_password", events[i].detail.reason) end

    local res = srv:request("POST", "/auth/login", {body = {email = "nobody-" .. name .. "@example.com",
                                                           password = "wrong password"}})
    assert.equal(401, res.status)
    local unknown = audit("?action=admin.login_failed&limit=1").json.events[1]
    assert.equal("unknown_email", unknown.detail.reason)
    assert.equal(null, unknown.target_id)
  end)

  it("leaves no event for a change that fails", function()
    local res = srv:request("POST", "/users", {headers = bearer(access), body = {email = other.email}})
    assert.equal(201, res.status)
    local taken_id = res.json.user.id
    local function newest() return audit("?limit=1").json.events[1].id end
    local before = newest()
    -- a user whose email is taken: the statement fails whole
    res = srv:request("POST", "/users", {headers = bearer(access), body = {email = other.email:upper()}})
    assert.equal(409, res.status)
    res = srv:request("PUT", "/users/" .. taken_id, {headers = bearer(access), body = {email = "o-" .. name .. "@example.com"}})
    assert.equal(409, res.status)
    -- an admin change in a transaction: the name is taken, nothing commits
    res = srv:request("PUT", "/auth/me", {headers = bearer(access), body = {name = other.name:upper()}})
    assert.equal(409, res.status, res.body)
    assert.equal(before, newest(), "no event since")
  end)

  it("records name, email and password changes, logout and deletion", function()
    local res = srv:request("PUT", "/auth/me", {headers = bearer(access), body = {
      name = name .. "x", email = "new-" .. email, password = "another long passphrase", current_password = password,
    }})
    assert.equal(200, res.status, res.body)
    local events = all_events("?target=admin:" .. admin_id .. "&since=" .. url_encode(res.json.admin.updated_at))
    local by_action = {}
    for _, e in ipairs(events) do by_action[e.action] = e end
    assert.same({changes = {name = {old = name, new = name .. "x"}}}, by_action["admin.updated"].detail)
    assert.same({changes = {email = {old = email, new = "new-" .. email}}}, by_action["admin.email_changed"].detail)
    assert.same({sessions_ended = 0}, by_action["admin.password_changed"].detail)

    assert.equal(204, srv:request("POST", "/auth/logout?all=true", {headers = bearer(other.access)}).status)
    local all = all_events("?action=admin.logout_all&actor=" .. other.admin.id)
    assert.equal(1, #all)
    assert.same({sessions_ended = 1}, all[1].detail)

    res = srv:request("DELETE", "/auth/me", {headers = bearer(access), body = {current_password = "another long passphrase"}})
    assert.equal(204, res.status)
    local login = api.admin_session(srv)
    local deleted = all_events("?action=admin.deleted&target=admin:" .. admin_id, login.access)
    assert.equal(admin_id, deleted[1].target_id)
    access = login.access
    assert.is_true(#all_events("?actor=" .. admin_id) > 0, "a deleted admin's events stay")
  end)

  it("logs each event as one structured line with the request id", function()
    local line = srv:log_line("audit", function(l) return l.action == "user.created" and l.request_id == "audit-create-1" end)
    assert.is_table(line, "no audit line for the user created")
    assert.equal("user", line.target_type)
    assert.equal(user_id, line.target_id)
    assert.equal("127.0.0.1", line.client)
    assert.is_number(line.audit_id)
    assert.equal(admin_id, line.actor_id)
    local registered = srv:log_line("audit", function(l) return l.action == "admin.registered"
      and l.request_id == "audit-register-1" end)
    assert.is_table(registered)
    assert.not_matches("argon2", srv:log_text())
  end)
end)
