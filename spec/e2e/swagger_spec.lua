-- Swagger UI in a real browser (Debian's chromium driven by playwright-core):
-- every operation of the OpenAPI document is listed, "Authorize" takes a
-- bearer token, and "Try it out" on GET /users gets a 200 from this server.
local server = require "support.server"
local api = require "support.api"
local cjson = require "cjson.safe"

describe("Swagger UI", function()
  local srv, session

  setup(function()
    srv = server.start({workers = 1})
    session = api.admin_session(srv)
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  it("has a browser to drive (vendor/install.sh installs chromium and playwright-core)", function()
    assert.truthy(io.open("/usr/bin/chromium"))
    assert.truthy(io.open("spec/browser/node_modules/playwright-core/package.json"))
  end)

  it("lists every operation, authorizes with a token and runs GET /users", function()
    local doc = srv:request("GET", "/openapi.json").json
    local operations = 0
    for _, item in pairs(doc.paths) do
      for method in pairs(item) do
        if ({get = 1, put = 1, post = 1, delete = 1, patch = 1})[method] then operations = operations + 1 end
      end
    end
    local p = io.popen(("node spec/browser/swagger.mjs http://127.0.0.1:%d %s 2>&1"):format(srv.port, session.access))
    local out = p:read("*a")
    p:close()
    local seen = assert(cjson.decode(out:match("{.*}") or ""), out)
    assert.is_nil(seen.error, seen.error)
    assert.equal(operations, seen.operations)
    assert.is_true(seen.authorized)
    assert.equal(200, seen.listUsersStatus, seen.listUsersBody)
    assert.same({}, seen.externalRequests, "everything is served locally")
    assert.is_false(seen.tokenStored, "the bearer token is kept in no browser storage")
    assert.same({}, seen.consoleErrors, "nothing refused by the Content-Security-Policy, no script error")
  end)

  it("sends a nonce-based Content-Security-Policy that the page's scripts carry", function()
    local res = srv:request("GET", "/apidocs")
    local csp = res.headers["content-security-policy"]
    assert.is_string(csp)
    local nonce = csp:match("script%-src 'nonce%-([%w_%-]+)'")
    assert.is_string(nonce, csp)
    assert.matches("default%-src 'none'", csp)
    assert.matches("frame%-ancestors 'none'", csp)
    assert.not_matches("unsafe%-inline", csp)
    assert.not_matches("unsafe%-eval", csp)
    local scripts = 0
    for attrs in res.body:gmatch("<script([^>]*)>") do
      scripts = scripts + 1
      assert.matches('nonce="' .. nonce:gsub("%-", "%%-") .. '"', attrs)
    end
    assert.equal(3, scripts)
    local again = srv:request("GET", "/apidocs").headers["content-security-policy"]
    assert.not_equal(csp, again, "a new nonce for every response")
  end)
end)
