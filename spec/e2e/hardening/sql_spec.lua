-- Hardening (issue 8), SQL: injection attempts in every field and parameter reach
-- the database as data: against the real binary, real PostgreSQL and a real SMTP
-- server. One named case per row of the issue; each asserts the exact answer
-- and that the service is still healthy afterwards, and the last case
-- searches every server's whole log for every password and token the file
-- used. Helpers: spec/support/hardening.lua.
local hard = require "support.hardening"


local secret, unique, urlencode, bearer, assert_healthy, assert_error, count_admins, new_admin
  = hard.secret, hard.unique, hard.urlencode, hard.bearer, hard.assert_healthy, hard.assert_error,
  hard.count_admins, hard.new_admin

describe("hardening:", function()
  local srv, sink, url
  local main

  setup(function()
    main = hard.main_server()
    srv, sink, url = main.srv, main.sink, main.url
  end)

  teardown(function()
    if main then main.stop() end
  end)

  describe("SQL", function()
    local admin
    local PAYLOADS = {"' OR 1=1--", "%00", "\"quoted\"", "back\\slash", "'; DROP TABLE admins;--",
                      "a'b\"c\\d%00", "\\x00\\'"}

    setup(function()
      admin = new_admin(srv, sink.dir, "sql")
    end)

    it("stores quotes, backslashes, %00 and ' OR 1=1-- literally or answers 422, never 500", function()
      local h = bearer(admin.access)
      local function allowed(res, ...)
        assert.is_table(res)
        for _, s in ipairs({...}) do if res.status == s then return end end
        error(("status %d: %s"):format(res.status, res.body))
      end
      for i, p in ipairs(PAYLOADS) do
        -- user name: any text, stored as sent
        local res = srv:request("POST", "/users",
          {headers = h, body = {email = unique("sqlu") .. "@example.com", name = p}})
        assert.equal(201, res.status, res.body)
        local id = res.json.user.id
        res = srv:request("GET", "/users/" .. id, {headers = h})
        assert.equal(p, res.json.user.name)
        res = srv:request("PATCH", "/users/" .. id, {headers = h, body = {name = p .. p}})
        assert.equal(200, res.status, res.body)
        assert.equal(p .. p, res.json.user.name)
        -- every other string field
        allowed(srv:request("POST", "/users", {headers = h, body = {email = p}}), 422)
        local local_part = unique("x" .. i) .. p:gsub("[^%w'%%=-]", "")
        allowed(srv:request("POST", "/users", {headers = h, body = {email = local_part .. "@example.com"}}), 201, 422)
        allowed(srv:request("GET", "/users?q=" .. urlencode(p), {headers = h}), 200)
        allowed(srv:request("GET", "/users?cursor=" .. urlencode(p), {headers = h}), 400)
        allowed(srv:request("GET", "/user?id=" .. urlencode(p), {headers = h}), 400)
        allowed(srv:request("GET", "/users/" .. urlencode(p), {headers = h}), 400, 404)
        allowed(srv:request("POST", "/auth/login", {body = {email = p, password = p}}), 422)
        allowed(srv:request("POST", "/auth/login", {body = {email = admin.email .. p, password = p}}), 401, 422)
        allowed(srv:request("POST", "/auth/register", {body = {email = p, name = p, password = p .. p .. p}}), 422)
        allowed(srv:request("POST", "/auth/password/forgot", {body = {email = p}}), 422)
        allowed(srv:request("POST", "/auth/confirm/resend", {body = {email = p}}), 422)
        allowed(srv:request("POST", "/auth/password/reset", {body = {token = p, password = "long enough " .. p}}), 400)
        allowed(srv:request("GET", "/auth/confirm?token=" .. urlencode(p)), 400)
        allowed(srv:request("PUT", "/auth/me", {headers = h, body = {name = p}}), 422)
      end
      local res = srv:request("GET", "/users?q=" .. urlencode("' OR 1=1--"), {headers = h})
      for _, u in ipairs(res.json.users) do assert.matches("' OR 1=1--", u.name, 1, true) end
      assert_healthy(srv)
    end)

    it("keeps an email and a password with quotes, backslashes and %00 exactly", function()
      local email = unique("o'hara'or'1'='1--%00") .. "@example.com"
      local password = secret("pw' OR 1=1--\\\"%00" .. unique("x"))
      local res = srv:request("POST", "/auth/register",
        {body = {email = email, name = unique("quote"), password = password}})
      assert.equal(201, res.status, res.body)
      assert.equal(email, res.json.admin.email)
      assert.equal(1, count_admins(url, email))
      -- the password is compared as stored: a prefix is not enough
      res = srv:request("POST", "/auth/login", {body = {email = email, password = "pw' OR 1=1--"}})
      assert_error(res, 401, "invalid_credentials")
      res = srv:request("POST", "/auth/login", {body = {email = email, password = password}})
      assert_error(res, 403, "account_not_confirmed") -- right password, not yet confirmed
      assert_healthy(srv)
    end)

    it("refuses a 10 MB field with 413", function()
      local res = srv:request("POST", "/users", {headers = bearer(admin.access),
        body = {email = unique("huge") .. "@example.com", name = string.rep("n", 10 * 1024 * 1024)}})
      assert_error(res, 413, "payload_too_large")
      assert_healthy(srv)
    end)
  end)
end)

describe("hardening: leaks", function()
  it("logs no password, token or key of this file in any of its servers' logs", function()
    hard.assert_no_secrets_logged()
  end)
end)
