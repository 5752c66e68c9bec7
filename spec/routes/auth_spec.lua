-- routes/auth.lua and lib/auth.lua: /auth/*.
local kit = require "support.kit"
local null = require("cjson.safe").null

local PASSWORD = kit.PASSWORD

describe("auth routes", function()
  local k

  before_each(function()
    k = kit.new()
  end)

  local function register(fields)
    fields = fields or {}
    return k:post("/auth/register", {json = {
      email = fields.email or "ada@example.com",
      name = fields.name or "ada",
      password = fields.password or PASSWORD,
    }})
  end

  local function login(email, password)
    return k:post("/auth/login", {json = {email = email, password = password or PASSWORD}})
  end

  local function sha256(s) return require("host.crypto").sha256(s) end

  describe("POST /auth/register", function()
    it("returns 201 with the unconfirmed admin", function()
      local res = register()
      assert.status(201, res)
      local admin = res.json.admin
      assert.equal("ada@example.com", admin.email)
      assert.equal("ada", admin.name)
      assert.is_false(admin.confirmed)
      assert.is_number(admin.id)
      assert.is_string(admin.created_at)
    end)

    it("answers a taken email or name with 409 before hashing the password", function()
      assert.status(201, register())
      local hashed = k.password.hashed
      local res = register({name = "ada2"})
      assert.status(409, res)
      assert.is_string(res.json.error.fields.email)
      res = register({email = "ada2@example.com", name = "ADA"})
      assert.status(409, res)
      assert.is_string(res.json.error.fields.name)
      res = register({email = "ADA@example.com", name = "Ada"})
      assert.same({"email", "name"}, (function()
        local f = {}
        for key in pairs(res.json.error.fields) do f[#f + 1] = key end
        table.sort(f)
        return f
      end)())
      assert.equal(hashed, k.password.hashed, "no hashing for a registration that cannot succeed")
    end)

    it("never returns the password hash", function()
      local res = register()
      assert.is_nil(res.json.admin.password_hash)
      assert.is_nil(res.body:find("$fake$", 1, true))
    end)

    it("stores an argon2 hash, not the password", function()
      register()
      assert.equal(k.password.stored(PASSWORD), k.db.state.admins[1].password_hash)
    end)

    it("mails a confirmation link with a text and an html part", function()
      register()
      local mail = k:last_mail()
      assert.equal("ada@example.com", mail.to)
      local token = kit.link_token(mail)
      assert.truthy(mail.text:find("https://moonkeep.test/auth/confirm?token=" .. token, 1, true))
      assert.truthy(mail.html:find("https://moonkeep.test/auth/confirm?token=" .. token, 1, true))
      assert.is_true(#token >= 22) -- at least 128 bits of base64url
    end)

    it("stores only the SHA-256 of the link's token, expiring in 24 hours", function()
      register()
      local token = kit.link_token(k:last_mail())
      local stored = k.db.state.tokens[1]
      assert.equal(sha256(token), stored.token_hash)
      assert.equal("confirm", stored.kind)
      assert.equal(k.clock.now + 86400, stored.expires_at)
    end)

    it("still registers when the mail cannot be sent, and sends it on a later round", function()
      k.mail.fail("smtp: 421 try later")
      local res = register()
      assert.status(201, res)
      assert.equal(1, #k.db.state.admins)
      assert.same({}, k:mails())
      local row = k.db.state.outbox[1]
      assert.equal("due", row.status)
      assert.equal(1, row.attempts)
      assert.equal("smtp: 421 try later", row.last_error)
      assert.is_table(k.log.find("mail will be retried"))
      k.mail.refusing = nil
      k:advance(1.2)
      assert.equal(1, #k:mails())
      assert.equal("sent", row.status)
      assert.is_nil(row.token)
    end)

    it("returns 409 naming the email when it is taken, whatever its case", function()
      register()
      local res = register({email = "ADA@example.com", name = "other"})
      assert.status(409, res)
      assert.equal("conflict", res.json.error.code)
      assert.same({email = "is already in use"}, res.json.error.fields)
    end)

    it("returns 409 naming the name when it is taken, whatever its case", function()
      register()
      local res = register({email = "other@example.com", name = "ADA"})
      assert.status(409, res)
      assert.same({name = "is already taken"}, res.json.error.fields)
    end)

    it("rolls the admin back when the token cannot be stored", function()
      k.db:fail("create_token")
      assert.status(503, register())
      assert.equal(0, #k.db.state.admins)
    end)

    it("returns 422 naming each field that breaks a rule", function()
      local res = k:post("/auth/register", {json = {email = "not an email", name = "a", password = "short"}})
      assert.status(422, res)
      assert.same({"email", "name", "password"}, (function()
        local keys = {}
        for key in pairs(res.json.error.fields) do keys[#keys + 1] = key end
        table.sort(keys)
        return keys
      end)())
    end)

    it("returns 422 for a password equal to the email", function()
      local res = register({password = "ada@example.com"})
      assert.status(422, res)
      assert.equal("must not be the same as the email address", res.json.error.fields.password)
    end)

    it("returns 422 naming a field of the wrong JSON type", function()
      local res = k:post("/auth/register", {json = {email = 123, name = "ada", password = PASSWORD}})
      assert.status(422, res)
      assert.same({email = "must be a string"}, res.json.error.fields)
    end)

    it("returns 400 invalid_json for malformed JSON and 415 for another type", function()
      local res = k:post("/auth/register", {body = '{"email": ', headers = {["Content-Type"] = "application/json"}})
      assert.status(400, res)
      assert.equal("invalid_json", res.json.error.code)
      res = k:post("/auth/register", {body = "email=a", headers = {["Content-Type"] = "text/plain"}})
      assert.status(415, res)
    end)

    it("never logs the password", function()
      register()
      assert.is_nil(k.log.text():find(PASSWORD, 1, true))
    end)
  end)

  describe("GET /auth/confirm", function()
    local token

    before_each(function()
      register()
      token = kit.link_token(k:last_mail())
    end)

    it("confirms the admin and returns it", function()
      local res = k:get("/auth/confirm?token=" .. token)
      assert.status(200, res)
      assert.is_true(res.json.admin.confirmed)
      assert.is_true(k.db.state.admins[1].confirmed)
    end)

    it("works once: the second use is 400 invalid_token", function()
      k:get("/auth/confirm?token=" .. token)
      local res = k:get("/auth/confirm?token=" .. token)
      assert.status(400, res)
      assert.equal("invalid_token", res.json.error.code)
    end)

    it("is not used up by a HEAD request (link checkers)", function()
      k:request("HEAD", "/auth/confirm?token=" .. token)
      assert.status(200, k:get("/auth/confirm?token=" .. token))
    end)

    it("expires after CONFIRM_TOKEN_TTL_S", function()
      k:advance(86400)
      assert.status(400, k:get("/auth/confirm?token=" .. token))
    end)

    it("returns 400 invalid_token for an unknown or missing token", function()
      assert.status(400, k:get("/auth/confirm?token=nope"))
      local res = k:get("/auth/confirm")
      assert.status(400, res)
      assert.equal("invalid_token", res.json.error.code)
    end)

    it("shows a browser a small HTML page", function()
      local res = k:get("/auth/confirm?token=" .. token, {headers = {Accept = "text/html,application/xhtml+xml"}})
      assert.status(200, res)
      assert.matches("^text/html", res:header("Content-Type"))
      assert.truthy(res.body:find("Email address confirmed", 1, true))
      assert.equal("no-referrer", res:header("Referrer-Policy"))
    end)

    it("shows a browser an HTML page for a used link, with 400", function()
      k:get("/auth/confirm?token=" .. token)
      local res = k:get("/auth/confirm?token=" .. token, {headers = {Accept = "text/html"}})
      assert.status(400, res)
      assert.matches("^text/html", res:header("Content-Type"))
    end)

    it("HTML-escapes what it shows", function()
      local res = k:get("/auth/confirm?token=%3Cscript%3E", {headers = {Accept = "text/html"}})
      assert.status(400, res)
      assert.is_nil(res.body:find("<script>", 1, true))
    end)
  end)

  describe("POST /auth/confirm/resend", function()
    it("answers 202 for an unknown address and sends nothing", function()
      local res = k:post("/auth/confirm/resend", {json = {email = "nobody@example.com"}})
      assert.status(202, res)
      assert.equal(0, #k:mails())
    end)

    it("mails a new link to an unconfirmed admin", function()
      register()
      local res = k:post("/auth/confirm/resend", {json = {email = "ADA@example.com"}})
      assert.status(202, res)
      assert.equal(2, #k:mails())
      assert.status(200, k:get("/auth/confirm?token=" .. kit.link_token(k:last_mail())))
    end)

    it("sends nothing to an admin already confirmed", function()
      k:seed_admin({email = "ada@example.com"})
      assert.status(202, k:post("/auth/confirm/resend", {json = {email = "ada@example.com"}}))
      assert.equal(0, #k:mails())
    end)

    it("returns 429 with Retry-After after 5 mails per address in 15 minutes, known or not", function()
      for _ = 1, 5 do
        assert.status(202, k:post("/auth/confirm/resend", {json = {email = "nobody@example.com"}}))
      end
      local res = k:post("/auth/confirm/resend", {json = {email = "nobody@example.com"}})
      assert.status(429, res)
      assert.equal("rate_limited", res.json.error.code)
      assert.equal("900", res:header("Retry-After"))
      k:advance(600)
      assert.equal("300", k:post("/auth/confirm/resend", {json = {email = "nobody@example.com"}}):header("Retry-After"))
      k:advance(300)
      assert.status(202, k:post("/auth/confirm/resend", {json = {email = "nobody@example.com"}}))
    end)

    it("counts the registration's mail", function()
      register()
      for _ = 1, 4 do assert.status(202, k:post("/auth/confirm/resend", {json = {email = "ada@example.com"}})) end
      assert.status(429, k:post("/auth/confirm/resend", {json = {email = "ada@example.com"}}))
      assert.equal(5, #k:mails())
    end)

    it("counts each kind apart", function()
      for _ = 1, 5 do k:post("/auth/confirm/resend", {json = {email = "x@example.com"}}) end
      assert.status(202, k:post("/auth/password/forgot", {json = {email = "x@example.com"}}))
    end)

    it("returns 422 for an invalid address", function()
      assert.status(422, k:post("/auth/confirm/resend", {json = {email = "nope"}}))
    end)
  end)

  describe("POST /auth/login", function()
    it("returns the Tokens of a new session", function()
      local admin = k:seed_admin({email = "ada@example.com"})
      local res = login("Ada@Example.com")
      assert.status(200, res)
      assert.equal("Bearer", res.json.token_type)
      assert.equal(900, res.json.expires_in)
      assert.is_string(res.json.access_token)
      assert.is_string(res.json.refresh_token)
      assert.equal(admin.id, res.json.admin.id)
      assert.is_nil(res.json.admin.password_hash)
      assert.equal(1, #k.db.state.sessions)
    end)

    it("issues tokens that carry the session, typed access and refresh", function()
      local s = k:signed_in()
      local access = k.jwt.verify(s.access, "access")
      local refresh = k.jwt.verify(s.refresh, "refresh")
      assert.equal(tostring(s.admin.id), access.sub)
      assert.equal(access.sid, refresh.sid)
      assert.is_string(access.jti)
      assert.equal(k.clock.now + 900, access.exp)
      assert.equal(k.clock.now + 30 * 86400, refresh.exp)
    end)

    it("returns the same 401 for an unknown email and a wrong password", function()
      k:seed_admin({email = "ada@example.com"})
      local unknown = login("nobody@example.com")
      local wrong = login("ada@example.com", "not the password")
      assert.status(401, unknown)
      assert.status(401, wrong)
      assert.equal("invalid_credentials", unknown.json.error.code)
      assert.same(unknown.json, wrong.json)
    end)

    it("does the same hashing work for an unknown email", function()
      login("nobody@example.com")
      assert.equal(1, k.password.dummies)
    end)

    it("returns 403 for an unconfirmed admin only once the password is right", function()
      k:seed_admin({email = "ada@example.com", confirmed = false})
      assert.status(401, login("ada@example.com", "wrong password"))
      local res = login("ada@example.com")
      assert.status(403, res)
      assert.equal("account_not_confirmed", res.json.error.code)
    end)

    it("returns 429 after 20 failures for an email, even with the right password", function()
      k:seed_admin({email = "ada@example.com"})
      for _ = 1, 20 do assert.status(401, login("ada@example.com", "wrong password")) end
      local res = login("ada@example.com")
      assert.status(429, res)
      assert.equal("rate_limited", res.json.error.code)
      assert.equal("900", res:header("Retry-After"))
    end)

    it("counts failures for unknown emails too", function()
      for _ = 1, 20 do login("nobody@example.com", "wrong password") end
      assert.status(429, login("nobody@example.com"))
    end)

    it("lets the email try again once the window is over", function()
      k:seed_admin({email = "ada@example.com"})
      for _ = 1, 20 do login("ada@example.com", "wrong password") end
      k:advance(900)
      assert.status(200, login("ada@example.com"))
    end)

    it("clears the failures on success", function()
      k:seed_admin({email = "ada@example.com"})
      for _ = 1, 19 do login("ada@example.com", "wrong password") end
      assert.status(200, login("ada@example.com"))
      for _ = 1, 19 do login("ada@example.com", "wrong password") end
      assert.status(200, login("ada@example.com"))
    end)

    it("honours LOGIN_FAILURE_LIMIT", function()
      k = kit.new({env = {LOGIN_FAILURE_LIMIT = "2"}})
      k:seed_admin({email = "ada@example.com"})
      login("ada@example.com", "x")
      login("ada@example.com", "x")
      assert.status(429, login("ada@example.com"))
    end)

    it("re-hashes a hash made with older parameters", function()
      k:seed_admin({email = "ada@example.com", old_hash = true})
      assert.status(200, login("ada@example.com"))
      assert.equal(k.password.stored(PASSWORD), k.db.state.admins[1].password_hash)
    end)

    it("returns 422 without an email or a password", function()
      local res = k:post("/auth/login", {json = {email = "ada@example.com"}})
      assert.status(422, res)
      assert.same({password = "is required"}, res.json.error.fields)
    end)

    it("returns 503 when the database is down", function()
      k.db:fail("*", nil, math.huge)
      assert.status(503, login("ada@example.com"))
    end)

    it("returns 503 with Retry-After when the hashing queue is full, and counts no failure", function()
      k:seed_admin({email = "ada@example.com"})
      k.password.busy = true
      local res = login("ada@example.com")
      assert.status(503, res)
      assert.equal("1", res:header("Retry-After"))
      local counted = k.db.state.rates["login_failure\0ada@example.com"]
      assert.equal(0, counted and counted.count or 0, "counted first, then taken back")
    end)
  end)

  describe("POST /auth/refresh", function()
    local s

    before_each(function()
      s = k:signed_in()
    end)

    it("rotates the refresh token given in the body", function()
      local res = k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      assert.status(200, res)
      assert.is_string(res.json.access_token)
      assert.are_not.equal(s.refresh, res.json.refresh_token)
      assert.equal(s.admin.id, res.json.admin.id)
      assert.status(200, k:get("/auth/me", {token = res.json.access_token}))
    end)

    it("takes the refresh token as a bearer token too", function()
      assert.status(200, k:post("/auth/refresh", {token = s.refresh}))
    end)

    it("keeps GET for old clients", function()
      assert.status(200, k:get("/auth/refresh", {token = s.refresh}))
    end)

    it("revokes the whole session when a rotated refresh token is used again", function()
      local rotated = k:post("/auth/refresh", {json = {refresh_token = s.refresh}}).json
      local res = k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      assert.status(401, res)
      assert.equal("unauthorized", res.json.error.code)
      assert.status(401, k:post("/auth/refresh", {json = {refresh_token = rotated.refresh_token}}))
      assert.status(401, k:get("/auth/me", {token = rotated.access_token}))
      assert.status(401, k:get("/auth/me", {token = s.access}))
      assert.is_table(k.log.find("refresh token reused"))
    end)

    it("leaves the admin's other sessions alone on reuse", function()
      local other = login(s.admin.email).json
      k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      assert.status(200, k:get("/auth/me", {token = other.access_token}))
    end)

    it("refuses an access token", function()
      assert.status(401, k:post("/auth/refresh", {json = {refresh_token = s.access}}))
      assert.status(401, k:post("/auth/refresh", {token = s.access}))
    end)

    it("returns 401 token_expired for an expired refresh token", function()
      k:advance(30 * 86400)
      local res = k:post("/auth/refresh", {json = {refresh_token = s.refresh}})
      assert.status(401, res)
      assert.equal("token_expired", res.json.error.code)
    end)

    it("returns 401 without a refresh token", function()
      local res = k:post("/auth/refresh")
      assert.status(401, res)
      assert.equal("Bearer", res:header("WWW-Authenticate"))
    end)

    it("returns 422 for a refresh_token that is not a string", function()
      assert.status(422, k:post("/auth/refresh", {json = {refresh_token = 42}}))
    end)

    it("refuses the refresh token of a session that was logged out", function()
      assert.status(204, k:post("/auth/logout", {token = s.access}))
      assert.status(401, k:post("/auth/refresh", {json = {refresh_token = s.refresh}}))
    end)
  end)

  describe("POST /auth/logout", function()
    local s

    before_each(function()
      s = k:signed_in()
    end)

    it("ends this session at once: its access and refresh tokens stop working", function()
      local res = k:post("/auth/logout", {token = s.access})
      assert.status(204, res)
      assert.is_nil(res.body)
      local me = k:get("/auth/me", {token = s.access})
      assert.status(401, me)
      assert.equal("unauthorized", me.json.error.code)
      assert.status(401, k:post("/auth/refresh", {token = s.refresh}))
    end)

    it("leaves the admin's other sessions alone", function()
      local other = login(s.admin.email).json
      k:post("/auth/logout", {token = s.access})
      assert.status(200, k:get("/auth/me", {token = other.access_token}))
    end)

    it("ends every session with ?all=true", function()
      local other = login(s.admin.email).json
      assert.status(204, k:post("/auth/logout?all=true", {token = s.access}))
      assert.status(401, k:get("/auth/me", {token = other.access_token}))
      assert.status(401, k:get("/auth/me", {token = s.access}))
    end)

    it("returns 400 for ?all= that is not a boolean", function()
      assert.status(400, k:post("/auth/logout?all=maybe", {token = s.access}))
    end)

    it("returns 401 without a token", function()
      assert.status(401, k:post("/auth/logout"))
    end)
  end)

  describe("POST /auth/password/forgot", function()
    it("answers 202 and mails nothing for an unknown address", function()
      assert.status(202, k:post("/auth/password/forgot", {json = {email = "nobody@example.com"}}))
      assert.equal(0, #k:mails())
    end)

    it("mails a reset link that expires in 30 minutes", function()
      k:seed_admin({email = "ada@example.com"})
      assert.status(202, k:post("/auth/password/forgot", {json = {email = "ada@example.com"}}))
      local mail = k:last_mail()
      local token = kit.link_token(mail)
      assert.truthy(mail.text:find("https://moonkeep.test/auth/password/reset?token=" .. token, 1, true))
      assert.equal(k.clock.now + 1800, k.db.state.tokens[1].expires_at)
      assert.equal("reset", k.db.state.tokens[1].kind)
    end)

    it("returns 429 after 5 mails per address in 15 minutes", function()
      for _ = 1, 5 do k:post("/auth/password/forgot", {json = {email = "ada@example.com"}}) end
      local res = k:post("/auth/password/forgot", {json = {email = "ada@example.com"}})
      assert.status(429, res)
      assert.is_string(res:header("Retry-After"))
    end)
  end)

  describe("/auth/password/reset", function()
    local admin, token

    before_each(function()
      admin = k:seed_admin({email = "ada@example.com", name = "ada"})
      k:post("/auth/password/forgot", {json = {email = "ada@example.com"}})
      token = kit.link_token(k:last_mail())
    end)

    local function reset(password, with_token)
      return k:post("/auth/password/reset", {json = {token = with_token or token, password = password}})
    end

    it("GET shows a self-contained form that posts JSON with fetch", function()
      local res = k:get("/auth/password/reset?token=" .. token)
      assert.status(200, res)
      assert.matches("^text/html", res:header("Content-Type"))
      assert.truthy(res.body:find('value="' .. token .. '"', 1, true))
      assert.truthy(res.body:find("fetch(", 1, true))
      assert.is_nil(res.body:find("<script src", 1, true))
      local csp = res:header("Content-Security-Policy")
      local nonce = csp:match("'nonce%-([^']+)'")
      assert.truthy(res.body:find('<script nonce="' .. nonce .. '">', 1, true))
      assert.equal("no-store", res:header("Cache-Control"))
      assert.equal("no-referrer", res:header("Referrer-Policy"))
    end)

    it("GET does not use up the token", function()
      k:get("/auth/password/reset?token=" .. token)
      k:get("/auth/password/reset?token=" .. token)
      assert.status(204, reset("a brand new password"))
    end)

    it("GET shows a 400 page for a bad token", function()
      local res = k:get("/auth/password/reset?token=nope")
      assert.status(400, res)
      assert.matches("^text/html", res:header("Content-Type"))
    end)

    it("POST sets the password: the new one logs in, the old one does not", function()
      assert.status(204, reset("a brand new password"))
      assert.status(200, login("ada@example.com", "a brand new password"))
      assert.status(401, login("ada@example.com", PASSWORD))
    end)

    it("POST ends every session of the admin", function()
      local s = login("ada@example.com").json
      reset("a brand new password")
      assert.status(401, k:get("/auth/me", {token = s.access_token}))
      assert.status(401, k:post("/auth/refresh", {token = s.refresh_token}))
    end)

    it("POST clears the failed logins", function()
      for _ = 1, 20 do login("ada@example.com", "wrong password") end
      assert.status(429, login("ada@example.com"))
      reset("a brand new password")
      assert.status(200, login("ada@example.com", "a brand new password"))
    end)

    it("POST works once", function()
      assert.status(204, reset("a brand new password"))
      local res = reset("another new password")
      assert.status(400, res)
      assert.equal("invalid_token", res.json.error.code)
    end)

    it("POST refuses an expired token", function()
      k:advance(1800)
      assert.status(400, reset("a brand new password"))
    end)

    it("POST refuses an unknown token", function()
      assert.status(400, reset("a brand new password", "unknown"))
    end)

    it("POST returns 422 for a short password, and keeps the token", function()
      local res = reset("short")
      assert.status(422, res)
      assert.same({password = "must be 8 to 128 characters long"}, res.json.error.fields)
      assert.status(204, reset("a brand new password"))
    end)

    it("POST returns 422 for a password equal to the email", function()
      local res = reset("ada@example.com")
      assert.status(422, res)
      assert.equal("must not be the same as the email address", res.json.error.fields.password)
    end)

    it("POST confirms an unconfirmed admin (the link reached the address)", function()
      admin.confirmed = false
      reset("a brand new password")
      assert.is_true(admin.confirmed)
    end)
  end)

  describe("/auth/me", function()
    local s

    before_each(function()
      s = k:signed_in({email = "ada@example.com", name = "ada"})
    end)

    it("GET returns the logged-in admin", function()
      local res = k:get("/auth/me", {token = s.access})
      assert.status(200, res)
      assert.same({"confirmed", "created_at", "email", "id", "name", "updated_at"}, (function()
        local keys = {}
        for key in pairs(res.json.admin) do keys[#keys + 1] = key end
        table.sort(keys)
        return keys
      end)())
    end)

    it("GET returns 401 without a token", function()
      local res = k:get("/auth/me")
      assert.status(401, res)
      assert.equal("Bearer", res:header("WWW-Authenticate"))
    end)

    it("PUT changes the name without the current password", function()
      local res = k:put("/auth/me", {token = s.access, json = {name = "ada.l"}})
      assert.status(200, res)
      assert.equal("ada.l", res.json.admin.name)
    end)

    it("PUT returns 409 for a name taken by another admin", function()
      k:seed_admin({name = "grace"})
      local res = k:put("/auth/me", {token = s.access, json = {name = "Grace"}})
      assert.status(409, res)
      assert.same({name = "is already taken"}, res.json.error.fields)
    end)

    it("PUT returns 422 for an email change without current_password", function()
      local res = k:put("/auth/me", {token = s.access, json = {email = "new@example.com"}})
      assert.status(422, res)
      assert.is_string(res.json.error.fields.current_password)
    end)

    it("PUT returns 422 for a wrong current_password, and counts it as a failed login", function()
      local res = k:put("/auth/me", {token = s.access,
                                     json = {email = "new@example.com", current_password = "wrong"}})
      assert.status(422, res)
      assert.equal("is not correct", res.json.error.fields.current_password)
      assert.equal(1, k.db.state.rates["login_failure\0ada@example.com"].count)
    end)

    it("PUT changes the email: unconfirmed, and a link mailed to the new address", function()
      local res = k:put("/auth/me", {token = s.access,
                                     json = {email = "New@Example.com", current_password = PASSWORD}})
      assert.status(200, res)
      assert.equal("new@example.com", res.json.admin.email)
      assert.is_false(res.json.admin.confirmed)
      local mail = k:last_mail()
      assert.equal("new@example.com", mail.to)
      assert.status(200, k:get("/auth/confirm?token=" .. kit.link_token(mail)))
    end)

    it("PUT makes older confirmation links useless after an email change", function()
      k:post("/auth/confirm/resend", {json = {email = "ada@example.com"}}) -- confirmed: nothing sent
      s.admin.confirmed = false
      k:post("/auth/confirm/resend", {json = {email = "ada@example.com"}})
      local old_link = kit.link_token(k:last_mail())
      k:put("/auth/me", {token = s.access, json = {email = "new@example.com", current_password = PASSWORD}})
      assert.status(400, k:get("/auth/confirm?token=" .. old_link))
    end)

    it("PUT returns 409 for an email another admin has", function()
      k:seed_admin({email = "grace@example.com"})
      local res = k:put("/auth/me", {token = s.access,
                                     json = {email = "grace@example.com", current_password = PASSWORD}})
      assert.status(409, res)
      assert.same({email = "is already in use"}, res.json.error.fields)
    end)

    it("PUT changes the password and ends every other session, not this one", function()
      local other = login("ada@example.com").json
      local res = k:put("/auth/me", {token = s.access,
                                     json = {password = "a brand new password", current_password = PASSWORD}})
      assert.status(200, res)
      assert.status(200, k:get("/auth/me", {token = s.access}))
      assert.status(401, k:get("/auth/me", {token = other.access_token}))
      assert.status(200, login("ada@example.com", "a brand new password"))
    end)

    it("PUT with nothing to change returns the admin as it is", function()
      local res = k:put("/auth/me", {token = s.access, json = {}})
      assert.status(200, res)
      assert.equal("ada", res.json.admin.name)
    end)

    it("DELETE deletes the admin; their tokens stop working at once", function()
      local other = login("ada@example.com").json
      local res = k:delete("/auth/me", {token = s.access})
      assert.status(422, res)
      assert.is_string(res.json.error.fields.current_password)
      res = k:delete("/auth/me", {token = s.access, json = {current_password = "not the password"}})
      assert.status(401, res)
      assert.equal("invalid_credentials", res.json.error.code)
      assert.equal(1, #k.db.state.admins)
      res = k:delete("/auth/me", {token = s.access, json = {current_password = s.password}})
      assert.status(204, res)
      assert.equal(0, #k.db.state.admins)
      assert.status(401, k:get("/auth/me", {token = s.access}))
      assert.status(401, k:get("/auth/me", {token = other.access_token}))
      assert.status(401, k:post("/auth/refresh", {token = s.refresh}))
    end)
  end)

  describe("GET /auth/admins", function()
    it("lists the admins, paginated, without their hashes", function()
      local s = k:signed_in()
      k:seed_admin()
      k:seed_admin()
      local res = k:get("/auth/admins?limit=2", {token = s.access})
      assert.status(200, res)
      assert.equal(2, #res.json.admins)
      assert.is_string(res.json.next_cursor)
      assert.is_nil(res.body:find("password", 1, true))
      res = k:get("/auth/admins?limit=2&cursor=" .. kit.url_encode(res.json.next_cursor), {token = s.access})
      assert.equal(1, #res.json.admins)
      assert.equal(null, res.json.next_cursor)
    end)

    it("returns 401 without a token", function()
      assert.status(401, k:get("/auth/admins"))
    end)
  end)
end)
