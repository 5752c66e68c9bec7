-- The admin console (/admin) against the real binary and PostgreSQL: its
-- files over the wire (CSP, ETag and 304, traversal refused), then the
-- whole journey in a real browser (Debian's chromium driven by
-- playwright-core, spec/browser/console.mjs): register, the confirmation
-- mail from the outbox folder, log in, users, the own account, admins, the
-- audit trail, log out; and the error paths. Screenshots of each screen go
-- to build/console-shots/ (docs/console.md shows the main ones).
local server = require "support.server"
local cjson = require "cjson.safe"

local SHOTS = "build/console-shots"

describe("admin console", function()
  local srv

  setup(function()
    -- short access tokens, so that the journey renews them with the refresh token
    srv = server.start({workers = 1, env = {ACCESS_TOKEN_TTL_S = "5"}})
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  describe("its files over the wire", function()
    it("serves the page with a strict Content-Security-Policy", function()
      local res = srv:request("GET", "/admin")
      assert.equal(200, res.status)
      assert.matches("^text/html", res.headers["content-type"])
      local csp = res.headers["content-security-policy"]
      assert.matches("default%-src 'none'", csp)
      assert.matches("script%-src 'self';", csp)
      assert.matches("frame%-ancestors 'none'", csp)
      assert.not_matches("unsafe", csp)
      assert.equal("DENY", res.headers["x-frame-options"])
    end)

    it("serves a module as JavaScript, and 304 for the ETag the browser has", function()
      local res = srv:request("GET", "/admin/assets/main.js")
      assert.equal(200, res.status)
      assert.equal("text/javascript; charset=utf-8", res.headers["content-type"])
      local etag = assert(res.headers.etag)
      res = srv:request("GET", "/admin/assets/main.js", {headers = {["If-None-Match"] = etag}})
      assert.equal(304, res.status)
      assert.equal(etag, res.headers.etag)
      res = srv:request("HEAD", "/admin/assets/main.js")
      assert.equal(200, res.status)
    end)

    it("refuses every way out of its folder", function()
      for _, target in ipairs({
        "/admin/assets/../app.lua", "/admin/assets/..%2fapp.lua", "/admin/assets/%2e%2e%2fapp.lua",
        "/admin/assets/..%2f..%2fscripts%2fapp.lua", "/admin/assets/%2e%2e", "/admin/assets/app.lua",
        "/admin/assets/..%5capp.lua", "/admin/assets/main.js%00.css", "/admin/../scripts/app.lua",
      }) do
        local res = srv:request("GET", target)
        assert.is_true(res.status == 404 or res.status == 400, target .. ": " .. tostring(res.status))
        assert.is_nil(res.body:find("require", 1, true), target)
      end
    end)
  end)

  describe("in a browser", function()
    local seen, out

    local function checks(names)
      assert.is_table(seen, out)
      assert.is_nil(seen.error, seen.error)
      local by_name = {}
      for _, c in ipairs(seen.checks) do by_name[c.name] = c end
      for _, name in ipairs(names) do
        local c = by_name[name]
        assert.is_table(c, "not reached: " .. name)
        assert.is_true(c.ok, name .. (c.detail ~= cjson.null and (": " .. tostring(c.detail)) or ""))
      end
    end

    setup(function()
      os.execute("rm -rf " .. SHOTS)
      local p = io.popen(("node spec/browser/console.mjs http://127.0.0.1:%d %s %s 2>&1"):format(
        srv.port, srv.outbox, SHOTS))
      out = p:read("*a")
      p:close()
      seen = cjson.decode(out:match("{.*}") or "")
    end)

    it("has a browser to drive (vendor/install.sh installs chromium and playwright-core)", function()
      assert.truthy(io.open("/usr/bin/chromium"))
      assert.truthy(io.open("spec/browser/node_modules/playwright-core/package.json"))
    end)

    it("registers, confirms by the mailed link, and logs in", function()
      checks({
        "opens on the log-in screen",
        "registers an admin (201) and says to check the inbox",
        "an unconfirmed admin is sent to 'confirm your email' with the API's message",
        "asks for the confirmation link again (202)",
        "the mailed link confirms the address",
        "'forgot password' asks for a reset link (202)",
        "logs in with the keyboard alone and lands on Users",
      })
    end)

    it("creates, pages, searches, edits and deletes users", function()
      checks({
        "an empty list says so",
        "creates a user from the dialog",
        "lists 20 users, then the rest with 'More users'",
        "searches users (q, case-insensitive)",
        "edits a user's name and active flag",
        "the delete confirmation starts on Cancel",
        "deletes a user after the confirmation",
        "Escape closes a dialog and focus goes back to its button",
      })
    end)

    it("lists the admins and changes the own name, email and password", function()
      checks({
        "lists the admins",
        "changes the name (shown in the header)",
        "a new email is shown unconfirmed",
        "the new address's link confirms it",
        "the account shows the address confirmed after its link",
        "changes the password with the current one",
      })
    end)

    it("shows every API error as its message, next to the field it names", function()
      checks({
        "422 on register is shown next to each field it names",
        "the form's message is the API's message",
        "409 on a taken email is shown next to the email field",
        "a wrong password shows the API's message",
        "409 on a taken user email is shown next to the email field",
        "422 on a user is shown next to each field it names",
        "changing the email without the current password is refused next to that field",
        "two different new passwords are refused next to the second",
        "a wrong password does not delete the account, and does not end the session",
      })
    end)

    it("shows the user's changes in the audit trail, with filters", function()
      assert.is_table(seen, out)
      if seen.auditAvailable == false then
        -- GET /audit is built on the `audit` branch; until it is merged the
        -- console says the server has no audit trail, which is checked here.
        checks({"without GET /audit the screen says so"})
        pending("GET /audit is not on this branch yet (branch `audit`): the audit step is checked once it is merged")
        return
      end
      checks({
        "the audit trail shows the user deletion, filtered by action",
        "the audit trail has the user's creation, update and deletion, filtered by target",
        "filters the audit trail by time (since, until)",
        "a refused audit filter (422) is shown next to its field",
      })
    end)

    it("renews the access token, and sends an ended session back to log in", function()
      checks({
        "the access token was renewed with the refresh token (POST /auth/refresh)",
        "a reload asks to log in again and comes back to the screen asked for",
        "a session ended elsewhere sends the console back to log in, saying why",
      })
    end)

    it("logs out, logs out everywhere, and deletes the account", function()
      checks({
        "logs out",
        "'log out everywhere' ends the other sessions too",
        "deletes the account (204) and logs out",
      })
    end)

    it("keeps tokens in memory only, loads nothing from elsewhere, and the CSP refuses nothing", function()
      checks({"no token is kept in browser storage or cookies", "no token is ever in a URL"})
      assert.same({}, seen.externalRequests, "everything is served locally")
      assert.same({}, seen.consoleErrors, "no CSP or Trusted Types refusal, no script error")
    end)

    it("passes every check it made, and saved a screenshot of each screen", function()
      checks({})
      for _, c in ipairs(seen.checks) do assert.is_true(c.ok, c.name) end
      assert.is_true(#seen.screenshots >= 20, #seen.screenshots .. " screenshots")
      for _, file in ipairs(seen.screenshots) do
        local f = assert(io.open(file, "rb"), file)
        assert.equal("\137PNG", f:read(4), file)
        f:close()
      end
    end)
  end)
end)
