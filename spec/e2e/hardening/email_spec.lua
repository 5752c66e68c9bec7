-- Hardening (issue 8), mail: header injection, links and hosts a client chooses, an
-- SMTP server down or refusing: against the real binary, real PostgreSQL and a real SMTP
-- server. One named case per row of the issue; each asserts the exact answer
-- and that the service is still healthy afterwards, and the last case
-- searches every server's whole log for every password and token the file
-- used. Helpers: spec/support/hardening.lua.
local hard = require "support.hardening"
local mailbox = require "support.mailbox"
local util = require "support.util"

local secret, start, unique, sh, sql, bearer, assert_healthy, assert_error, new_admin
  = hard.secret, hard.start, hard.unique, hard.sh, hard.sql, hard.bearer, hard.assert_healthy,
  hard.assert_error, hard.new_admin

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

  describe("Email", function()
    local function confirm_link(email)
      local raw_mail = assert(mailbox.message_to(sink.dir, email, 20), "no mail for " .. email)
      local link, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
      return link:sub(#srv.env.PUBLIC_URL + 1), secret(token), raw_mail
    end

    -- Registers email; through conn with opts.host and opts.headers when given.
    local function register(email, opts, conn)
      local body = {email = email, name = unique("mail"), password = secret("mail password " .. unique("p"))}
      if conn then
        return conn:request("POST", "/auth/register", {body = body, host = opts.host, headers = opts.headers})
      end
      return srv:request("POST", "/auth/register", {body = body})
    end

    local function expire_tokens(where)
      sql(url, "UPDATE one_time_tokens SET expires_at = now() - interval '1 second' WHERE " .. where)
    end

    local function reset_password(token, password)
      return srv:request("POST", "/auth/password/reset", {body = {token = token, password = password}})
    end

    local function reset_token(email)
      assert.equal(202, srv:request("POST", "/auth/password/forgot", {body = {email = email}}).status)
      local raw_mail = assert(util.wait_for(20, function()
        local msg = mailbox.message_to(sink.dir, email, 0.1)
        return msg and msg:find("/auth/password/reset", 1, true) and msg
      end), "no reset mail")
      local _, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
      return secret(token)
    end

    it("refuses a confirmation link used twice, expired or altered with 400 invalid_token", function()
      -- used twice
      local email = unique("conf") .. "@example.com"
      assert.equal(201, register(email).status)
      local path, token = confirm_link(email)
      assert.equal(200, srv:request("GET", path).status)
      assert_error(srv:request("GET", path), 400, "invalid_token")
      -- altered: one character changed, cut short, extended
      local email2 = unique("alt") .. "@example.com"
      assert.equal(201, register(email2).status)
      local path2, token2 = confirm_link(email2)
      local flipped = token2:sub(1, -2) .. (token2:sub(-1) == "A" and "B" or "A")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. flipped), 400, "invalid_token")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. token2:sub(1, -2)), 400, "invalid_token")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. token2 .. "A"), 400, "invalid_token")
      assert_error(srv:request("GET", "/auth/confirm?token=" .. token), 400, "invalid_token")
      -- expired (CONFIRM_TOKEN_TTL_S is at least 60: the clock is moved in the database)
      expire_tokens(("email = '%s'"):format(email2))
      assert_error(srv:request("GET", path2), 400, "invalid_token")
      assert_healthy(srv)
    end)

    it("refuses a reset token used twice, expired or altered with 400 invalid_token", function()
      local admin = new_admin(srv, sink.dir, "reset")
      local token = reset_token(admin.email)
      local altered = token:sub(1, -2) .. (token:sub(-1) == "A" and "B" or "A")
      local new_password = secret("a fresh passphrase " .. unique("p"))
      assert_error(reset_password(altered, new_password), 400, "invalid_token")
      assert.equal(204, reset_password(token, new_password).status)
      assert_error(reset_password(token, new_password .. "!"), 400, "invalid_token")
      local token2 = reset_token(admin.email)
      expire_tokens(("kind = 'reset' AND email = '%s'"):format(admin.email))
      assert_error(reset_password(token2, new_password .. "?"), 400, "invalid_token")
      assert_healthy(srv)
    end)

    it("refuses CR/LF in an email address or a name with 422 (no header injection)", function()
      local res = srv:request("POST", "/auth/register", {body = {email = "a@example.com\r\nBcc: victim@example.com",
        name = unique("crlf"), password = "long enough password"}})
      assert_error(res, 422, "validation_failed")
      assert.is_string(res.json.error.fields.email)
      res = srv:request("POST", "/auth/register", {body = {email = unique("crlf") .. "@example.com",
        name = "ab\r\nBcc: victim@example.com", password = "long enough password"}})
      assert_error(res, 422, "validation_failed")
      assert.is_string(res.json.error.fields.name)
      for _, route in ipairs({"/auth/password/forgot", "/auth/confirm/resend"}) do
        res = srv:request("POST", route, {body = {email = "a@example.com\nBcc: victim@example.com"}})
        assert_error(res, 422, "validation_failed")
      end
      local admin = new_admin(srv, sink.dir, "crlf")
      res = srv:request("POST", "/users", {headers = bearer(admin.access),
        body = {email = unique("u") .. "@example.com", name = "Eve\r\nBcc: victim@example.com"}})
      assert_error(res, 422, "validation_failed")
      assert.is_string(res.json.error.fields.name)
      res = srv:request("PUT", "/auth/me", {headers = bearer(admin.access),
        body = {email = "new@example.com\r\nBcc: victim@example.com", current_password = admin.password}})
      assert_error(res, 422, "validation_failed")
      assert.is_nil(mailbox.message_to(sink.dir, "victim@example.com", 0.5))
      assert_healthy(srv)
    end)

    it("builds links from PUBLIC_URL only, whatever Host an attacker sends", function()
      local email = unique("host") .. "@example.com"
      local conn = assert(srv:connect())
      local res = register(email, {host = "evil.example", headers = {["X-Forwarded-Host"] = "evil.example",
        ["X-Forwarded-Proto"] = "https", Forwarded = "host=evil.example"}}, conn)
      conn:close()
      assert.equal(201, res.status, res.body)
      local path, _, raw_mail = confirm_link(email)
      assert.truthy(path)
      assert.not_matches("evil%.example", raw_mail)
      conn = assert(srv:connect())
      res = conn:request("POST", "/auth/password/forgot", {host = "evil.example", body = {email = email},
        headers = {["X-Forwarded-Host"] = "evil.example"}})
      conn:close()
      assert.equal(202, res.status)
      local reset = assert(util.wait_for(20, function()
        local msg = mailbox.message_to(sink.dir, email, 0.1)
        return msg and msg:find("/auth/password/reset", 1, true) and msg
      end))
      local link = mailbox.link(reset, srv.env.PUBLIC_URL .. "/auth/password/reset?token=")
      assert.is_string(link)
      secret(link:match("token=([^&]+)"))
      assert.not_matches("evil%.example", reset)
      assert_healthy(srv)
    end)
  end)
end)

-- ---- mail faults -----------------------------------------------------------------------

describe("hardening: mail faults", function()
  -- True once the server logged a failed delivery attempt (within 10 s).
  local function retry_logged(srv)
    return util.wait_for(10, function() return srv:log_line("mail will be retried") ~= nil end)
  end

  it("registers with 201 while SMTP is down, and the mail arrives once SMTP returns", function()
    local port = util.free_port()
    local dir = util.tmpdir("mail")
    local srv = start({workers = 1, env = {MAIL_URL = ("smtp://127.0.0.1:%d"):format(port), MAIL_TLS = "off"}})
    local email = unique("down") .. "@example.com"
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = unique("down"),
      password = secret("smtp down password " .. unique("p"))}})
    assert.equal(201, res.status, res.body)
    assert.truthy(retry_logged(srv), "no failed attempt was logged")
    local sink = mailbox.start_sink(port, dir)
    local raw_mail = mailbox.message_to(dir, email, 30)
    sink.stop()
    assert.is_string(raw_mail, "the mail never arrived")
    local _, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    secret(token)
    assert_healthy(srv)
    srv:stop()
  end)

  it("registers with 201 while the outbox cannot be written, and the mail is written once it can", function()
    local blocker = os.tmpname() -- a regular file: mkdir below it fails, even as root
    local outbox = blocker .. "/outbox"
    local srv = start({workers = 1, env = {OUTBOX_DIR = outbox, MAIL_URL = ""}})
    local email = unique("full") .. "@example.com"
    local res = srv:request("POST", "/auth/register", {body = {email = email, name = unique("full"),
      password = secret("disk full password " .. unique("p"))}})
    assert.equal(201, res.status, res.body)
    assert.truthy(retry_logged(srv), "no failed attempt was logged")
    os.remove(blocker) -- the disk is back
    local raw_mail = mailbox.message_to(outbox, email, 30)
    assert.is_string(raw_mail, "the mail was lost")
    local _, token = mailbox.link(raw_mail, srv.env.PUBLIC_URL .. "/auth/confirm?token=")
    secret(token)
    assert_healthy(srv)
    srv:stop()
    os.execute("rm -rf " .. sh(blocker))
  end)

  it("keeps the API answering when Firehose is unreachable", function()
    -- nothing listens on port 9 of loopback: every batch fails to connect
    local srv = start({env = {
      FIREHOSE_STREAM = "moonkeep-logs", AWS_REGION = "eu-west-1",
      FIREHOSE_ENDPOINT = "http://127.0.0.1:9", FIREHOSE_FLUSH_MS = "50",
      AWS_ACCESS_KEY_ID = "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    }})
    local email = unique("fh") .. "@example.com"
    local res = srv:request("POST", "/auth/register",
      {body = {email = email, name = unique("fh"), password = "a long enough passphrase"}})
    assert.equal(201, res.status, res.body)
    for _ = 1, 200 do assert.equal(200, srv:request("GET", "/healthz").status) end
    assert.truthy(util.wait_for(10, function() return srv:log_text():find("firehose", 1, true) end))
    assert_healthy(srv)
    srv:stop()
  end)
end)

describe("hardening: leaks", function()
  it("logs no password, token or key of this file in any of its servers' logs", function()
    hard.assert_no_secrets_logged()
  end)
end)
