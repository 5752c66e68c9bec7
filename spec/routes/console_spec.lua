-- routes/console.lua: the admin console's page and files, served read-only
-- from scripts/console/ with a strict Content-Security-Policy and ETags.
local kit = require "support.kit"
local util = require "support.util"

local CONSOLE_DIR = "scripts/console"

-- The console's files, by name (a spec may list a folder; the route may not).
local function console_files()
  return util.files(CONSOLE_DIR, "^[^.]")
end

local function read(path)
  return assert(util.read_file(path), path)
end

local function directives(csp)
  local out = {}
  for part in csp:gmatch("[^;]+") do
    local name, value = part:match("^%s*([%w-]+)%s*(.-)%s*$")
    if name then out[name] = value end
  end
  return out
end

describe("the admin console", function()
  local k

  before_each(function()
    k = kit.new()
  end)

  describe("GET /admin", function()
    it("serves the console's page", function()
      local res = k:get("/admin")
      assert.status(200, res)
      assert.equal("text/html; charset=utf-8", res:header("Content-Type"))
      assert.equal(read(CONSOLE_DIR .. "/index.html"), res.body)
      assert.status(200, k:get("/admin/"))
    end)

    it("sends a Content-Security-Policy with no inline script, no eval, and no framing", function()
      local csp = k:get("/admin"):header("Content-Security-Policy")
      local d = directives(csp)
      assert.equal("'none'", d["default-src"])
      assert.equal("'self'", d["script-src"])
      assert.equal("'self'", d["style-src"])
      assert.equal("'self'", d["connect-src"])
      assert.equal("'none'", d["frame-ancestors"])
      assert.equal("'none'", d["form-action"])
      assert.equal("'none'", d["base-uri"])
      assert.equal("'script'", d["require-trusted-types-for"])
      assert.not_matches("unsafe", csp)
      assert.not_matches("nonce", csp)
    end)

    it("is never framed, sniffed or sent on as a Referer", function()
      local res = k:get("/admin")
      assert.equal("DENY", res:header("X-Frame-Options"))
      assert.equal("nosniff", res:header("X-Content-Type-Options"))
      assert.equal("no-referrer", res:header("Referrer-Policy"))
      assert.equal("same-origin", res:header("Cross-Origin-Opener-Policy"))
    end)

    it("loads one module script from /admin/assets and has no inline script, style or handler", function()
      local body = k:get("/admin").body
      local scripts = {}
      for attrs, inner in body:gmatch("<script([^>]*)>(.-)</script>") do
        scripts[#scripts + 1] = attrs
        assert.equal("", inner)
      end
      assert.same({' type="module" src="/admin/assets/main.js"'}, scripts)
      assert.is_nil(body:find("<style", 1, true))
      assert.is_nil(body:find(" style=", 1, true))
      assert.is_nil(body:find(" on%a+="))
      assert.is_nil(body:find("//", 1, true), "nothing from another origin")
    end)

    it("answers HEAD (it changes nothing) and refuses POST with 405", function()
      local res = k:request("HEAD", "/admin")
      assert.status(200, res)
      res = k:post("/admin")
      assert.status(405, res)
      assert.equal("GET, HEAD, OPTIONS", res:header("Allow"))
    end)
  end)

  describe("GET /admin/assets/{file}", function()
    it("serves every file of the console with its content type", function()
      local types = {js = "text/javascript; charset=utf-8", css = "text/css; charset=utf-8", svg = "image/svg+xml"}
      local served = 0
      for _, name in ipairs(console_files()) do
        local ext = name:match("%.(%a+)$")
        if ext ~= "html" then
          local res = k:get("/admin/assets/" .. name)
          assert.status(200, res)
          assert.equal(types[ext], res:header("Content-Type"), name)
          assert.equal(read(CONSOLE_DIR .. "/" .. name), res.body)
          assert.equal("nosniff", res:header("X-Content-Type-Options"))
          served = served + 1
        end
      end
      assert.is_true(served >= 5)
    end)

    it("refuses a path out of the console's folder, and the scripts' source", function()
      for _, target in ipairs({
        "/admin/assets/..%2Fapp.lua", "/admin/assets/..%2F..%2Fscripts%2Fapp.lua", "/admin/assets/../app.lua",
        "/admin/assets/%2E%2E", "/admin/assets/..", "/admin/assets/.", "/admin/assets/app.lua",
        "/admin/assets/..%2Froutes%2Fconsole.lua", "/admin/assets/main.js%00.css", "/admin/assets/.main.js",
        "/admin/assets/main..js", "/admin/assets/index.html", "/admin/assets/%2Fetc%2Fpasswd",
        "/admin/assets/main.JS.lua",
      }) do
        local res = k:get(target)
        assert.equal(404, res.status, target)
        assert.equal("not_found", res.json.error.code, target)
      end
    end)

    it("answers 404 for a file that is not there, and says so in the log", function()
      local res = k:get("/admin/assets/missing.js")
      assert.status(404, res)
      assert.is_table(k.log.find("console file missing"))
    end)
  end)

  describe("caching", function()
    it("tags each file with a strong ETag and has the browser ask again (no-cache)", function()
      local res = k:get("/admin/assets/main.js")
      assert.matches('^"%x+"$', res:header("ETag"))
      assert.equal("no-cache", res:header("Cache-Control"))
      assert.not_equal(res:header("ETag"), k:get("/admin/assets/api.js"):header("ETag"))
      assert.equal(res:header("ETag"), k:get("/admin/assets/main.js"):header("ETag"))
    end)

    it("answers 304 with no body when If-None-Match names the current ETag", function()
      local etag = k:get("/admin"):header("ETag")
      for _, header in ipairs({etag, "W/" .. etag, '"other", ' .. etag, "*"}) do
        local res = k:get("/admin", {headers = {["If-None-Match"] = header}})
        assert.equal(304, res.status, header)
        assert.is_nil(res.body)
        assert.equal(etag, res:header("ETag"))
      end
      assert.status(200, k:get("/admin", {headers = {["If-None-Match"] = '"stale"'}}))
    end)
  end)

  describe("the modules", function()
    -- What the CSP and the memory-only session promise, checked in the
    -- source: no HTML written as a string, no eval, no browser storage.
    it("write no HTML as a string, evaluate no code and keep nothing in browser storage", function()
      for _, name in ipairs(console_files()) do
        if name:match("%.js$") then
          local src = ("\n" .. read(CONSOLE_DIR .. "/" .. name)):gsub("\n%s*//[^\n]*", "\n") -- comments may say it
          for _, banned in ipairs({"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                                   "new Function", "localStorage", "sessionStorage", "document.cookie",
                                   "indexedDB", "http://", "https://"}) do
            assert.is_nil(src:find(banned, 1, true), name .. " uses " .. banned)
          end
        end
      end
    end)

    it("import only each other, by relative path", function()
      for _, name in ipairs(console_files()) do
        if name:match("%.js$") then
          for from in read(CONSOLE_DIR .. "/" .. name):gmatch('%f[%w]from "([^"]+)"') do
            assert.matches("^%./[%w_-]+%.js$", from, name)
            assert.truthy(io.open(CONSOLE_DIR .. "/" .. from:sub(3)), from)
          end
        end
      end
    end)
  end)

  it("is in the OpenAPI document like /apidocs", function()
    local doc = k:get("/openapi.json").json
    assert.is_table(doc.paths["/admin"].get)
    assert.is_table(doc.paths["/admin/assets/{file}"].get)
    assert.is_table(doc.paths["/admin/assets/{file}"].get.responses["304"])
  end)
end)
