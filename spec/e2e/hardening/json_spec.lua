-- Hardening (issue 8), JSON bodies: malformed, deep, repeated keys, raw control
-- characters, not UTF-8: against the real binary, real PostgreSQL and a real SMTP
-- server. One named case per row of the issue; each asserts the exact answer
-- and that the service is still healthy afterwards, and the last case
-- searches every server's whole log for every password and token the file
-- used. Helpers: spec/support/hardening.lua.
local hard = require "support.hardening"


local json_headers, assert_healthy, assert_error
  = hard.json_headers, hard.assert_healthy, hard.assert_error

describe("hardening:", function()
  local srv
  local main

  setup(function()
    main = hard.main_server()
    srv = main.srv
  end)

  teardown(function()
    if main then main.stop() end
  end)

  describe("JSON", function()
    local function post_raw(body)
      return srv:request("POST", "/auth/register", {headers = json_headers(), body = body})
    end

    it("refuses invalid UTF-8 with 400 invalid_json", function()
      local res = post_raw('{"email":"a\255b@example.com","name":"utf8x","password":"long enough password"}')
      assert_error(res, 400, "invalid_json")
      assert.equal("the body is not valid UTF-8", res.json.error.message)
      assert_error(post_raw('{"name":"\237\160\128"}'), 400, "invalid_json") -- a UTF-16 surrogate
      assert_healthy(srv)
    end)

    it("refuses truncated JSON with 400 invalid_json", function()
      assert_error(post_raw('{"email":"a@example.com","name":"x'), 400, "invalid_json")
      assert_error(post_raw('{"email":'), 400, "invalid_json")
      assert_healthy(srv)
    end)

    it("refuses 10,000-deep nesting with 400 (a depth limit, no stack overflow)", function()
      assert_error(post_raw(string.rep("[", 10000) .. string.rep("]", 10000)), 400, "invalid_json")
      assert_error(post_raw(string.rep('{"a":', 10000) .. "1" .. string.rep("}", 10000)), 400, "invalid_json")
      assert_healthy(srv)
    end)

    it("refuses duplicate keys with 400 invalid_json", function()
      local res = post_raw('{"email":"a@example.com","email":"admin@example.com","name":"dupkey",'
        .. '"password":"long enough password"}')
      assert_error(res, 400, "invalid_json")
      assert.equal("the body repeats a key inside one object", res.json.error.message)
      assert_error(post_raw('{"email":"a@example.com","\\u0065mail":"b@example.com"}'), 400, "invalid_json")
      assert_healthy(srv)
    end)

    it("refuses a NUL byte or a raw control character in the body with 400 (cjson would take them)", function()
      local res = post_raw('{"email":"a@example.com"}\0{"email":"admin@example.com"}')
      assert_error(res, 400, "invalid_json")
      res = post_raw('{"na\r\r":"}}g\t\t"}\0\0\0"') -- found by fuzz/json_fuzz.c: a 500 before
      assert_error(res, 400, "invalid_json")
      res = post_raw('{"email":"a@example.com","name":"tab\there","password":"long enough password"}')
      assert_error(res, 400, "invalid_json")
      assert.matches("control character", res.json.error.message)
      assert_healthy(srv)
    end)

    it("answers wrong types with 422 naming each field", function()
      local res = srv:request("POST", "/auth/register", {body = {email = 123, name = {}, password = true}})
      assert_error(res, 422, "validation_failed")
      assert.equal("must be a string", res.json.error.fields.email)
      assert.equal("must be a string", res.json.error.fields.name)
      assert.equal("must be a string", res.json.error.fields.password)
      assert_healthy(srv)
    end)
  end)
end)

describe("hardening: leaks", function()
  it("logs no password, token or key of this file in any of its servers' logs", function()
    hard.assert_no_secrets_logged()
  end)
end)
