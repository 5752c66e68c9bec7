-- routes/meta.lua and app.lua's dispatch: identity, health, docs, and the
-- answers every route shares (404, 405, OPTIONS, 415, bad query strings).
local kit = require "support.kit"

local SWAGGER_DIR = "vendor/node_modules/swagger-ui-dist"

local function have_swagger_ui()
  local f = io.open(SWAGGER_DIR .. "/swagger-ui-bundle.js", "rb")
  if f then f:close() end
  return f ~= nil
end

describe("meta routes", function()
  local k

  before_each(function()
    k = kit.new()
  end)

  it("GET / names the service and where the docs are", function()
    local res = k:get("/")
    assert.status(200, res)
    assert.same({service = "moonkeep", version = "0.0.0-spec", docs = "/apidocs"}, res.json)
  end)

  it("POST / is 405 with Allow", function()
    local res = k:post("/")
    assert.status(405, res)
    assert.equal("method_not_allowed", res.json.error.code)
    assert.equal("GET, HEAD, OPTIONS", res:header("Allow"))
  end)

  it("GET /healthz answers 200 even when the database is down", function()
    k.db:not_ready()
    assert.status(200, k:get("/healthz"))
  end)

  it("GET /readyz answers 200 when the database answers", function()
    local res = k:get("/readyz")
    assert.status(200, res)
    assert.equal("ready", res.json.status)
  end)

  it("GET /readyz answers 503 unavailable when the database does not", function()
    k.db:not_ready()
    local res = k:get("/readyz")
    assert.status(503, res)
    assert.equal("unavailable", res.json.error.code)
  end)

  it("answers 404 not_found as JSON for an unknown route", function()
    local res = k:get("/nope")
    assert.status(404, res)
    assert.same({error = {code = "not_found", message = "no such resource"}}, res.json)
  end)

  it("answers OPTIONS with the allowed methods", function()
    local res = k:request("OPTIONS", "/users/1")
    assert.status(204, res)
    assert.equal("DELETE, GET, HEAD, OPTIONS, PATCH, PUT", res:header("Allow"))
  end)

  it("answers 400 for a query string the host could not parse", function()
    local req = k:build_request("GET", "/users")
    req.query_error = true
    local res = k:handle(req)
    assert.status(400, res)
    assert.equal("bad_request", res.json.error.code)
  end)

  it("answers 415 for a body with a non-JSON type on any route", function()
    local res = k:post("/auth/login", {body = "<xml/>", headers = {["Content-Type"] = "application/xml"}})
    assert.status(415, res)
  end)

  it("accepts application/json with a charset and +json types", function()
    local res = k:post("/auth/login", {body = '{"email":"a@example.com","password":"x"}',
                                       headers = {["Content-Type"] = "application/json; charset=utf-8"}})
    assert.status(401, res)
    res = k:post("/auth/login", {body = '{"email":"a@example.com","password":"x"}',
                                 headers = {["Content-Type"] = "application/merge-patch+json"}})
    assert.status(401, res)
  end)

  it("refuses NaN and Infinity in JSON", function()
    local res = k:post("/auth/login", {body = '{"email":"a@example.com","password":NaN}',
                                       headers = {["Content-Type"] = "application/json"}})
    assert.status(400, res)
    assert.equal("invalid_json", res.json.error.code)
  end)

  describe("GET /apidocs", function()
    it("serves a Swagger UI page that loads local assets and /openapi.json", function()
      local res = k:get("/apidocs")
      assert.status(200, res)
      assert.matches("^text/html", res:header("Content-Type"))
      assert.truthy(res.body:find('src="/apidocs/swagger-ui-bundle.js"', 1, true))
      assert.truthy(res.body:find('href="/apidocs/swagger-ui.css"', 1, true))
      assert.is_nil(res.body:find("https://", 1, true))
    end)

    it("serves the initializer, pointed at /openapi.json, keeping no token in browser storage", function()
      local res = k:get("/apidocs/swagger-initializer.js")
      assert.status(200, res)
      assert.matches("^application/javascript", res:header("Content-Type"))
      assert.truthy(res.body:find('url: "/openapi.json"', 1, true))
      assert.truthy(res.body:find("persistAuthorization: false", 1, true))
    end)

    it("answers 404 for a file it does not serve", function()
      assert.status(404, k:get("/apidocs/package.json"))
      assert.status(404, k:get("/apidocs/..%2F..%2Fpackage.json"))
    end)

    it("answers 404 when the assets are not installed", function()
      k = kit.new({env = {SWAGGER_UI_DIR = "/nonexistent"}})
      assert.status(404, k:get("/apidocs/swagger-ui.css"))
      assert.is_table(k.log.find("Swagger UI asset missing"))
    end)

    local with_assets = have_swagger_ui() and it or pending
    with_assets("serves the assets with their content types", function()
      for file, type in pairs({["swagger-ui.css"] = "^text/css", ["swagger-ui-bundle.js"] = "^application/javascript",
                               ["swagger-ui-standalone-preset.js"] = "^application/javascript",
                               ["favicon-32x32.png"] = "^image/png"}) do
        local res = k:get("/apidocs/" .. file)
        assert.status(200, res)
        assert.matches(type, res:header("Content-Type"))
        assert.is_true(#res.body > 0)
      end
    end)
  end)
end)
