-- openapi.lua: the document covers every route, and only routes.
local kit = require "support.kit"

local METHODS = {get = true, put = true, post = true, delete = true, patch = true}

describe("the OpenAPI document", function()
  local k, openapi, doc

  before_each(function()
    k = kit.new()
    openapi = require "openapi"
    doc = openapi.document
  end)

  it("is OpenAPI 3.0.3 with a bearer security scheme", function()
    assert.equal("3.0.3", doc.openapi)
    assert.same({type = "http", scheme = "bearer", bearerFormat = "JWT",
                 description = doc.components.securitySchemes.bearerAuth.description},
                doc.components.securitySchemes.bearerAuth)
  end)

  it("documents every route of the router", function()
    for _, route in ipairs(k.app.router:routes()) do
      local item = doc.paths[route[2]]
      assert.is_table(item, "path not documented: " .. route[2])
      assert.is_table(item[route[1]:lower()], "method not documented: " .. route[1] .. " " .. route[2])
    end
  end)

  it("documents nothing the router does not serve", function()
    local routed = {}
    for _, route in ipairs(k.app.router:routes()) do routed[route[1] .. " " .. route[2]] = true end
    for path, item in pairs(doc.paths) do
      for method in pairs(item) do
        if METHODS[method] then
          assert.is_true(routed[method:upper() .. " " .. path], "not routed: " .. method .. " " .. path)
        end
      end
    end
  end)

  it("passes the self-check the host runs before serving", function()
    assert.same({true}, {k.app.self_check()})
  end)

  it("makes the self-check fail for an undocumented route", function()
    local routes = {unpack(k.app.router:routes())}
    routes[#routes + 1] = {"GET", "/secret", function() end}
    local ok, msg = openapi.check(routes)
    assert.is_false(ok)
    assert.matches("not in the OpenAPI document: GET /secret", msg, 1, true)
  end)

  it("makes the self-check fail for a documented operation without a route", function()
    local routes = {}
    for _, route in ipairs(k.app.router:routes()) do
      if not (route[1] == "PATCH" and route[2] == "/users/{id}") then routes[#routes + 1] = route end
    end
    local ok, msg = openapi.check(routes)
    assert.is_false(ok)
    assert.matches("documented but not routed: PATCH /users/{id}", msg, 1, true)
  end)

  it("marks the protected operations with bearerAuth and the public ones without", function()
    for _, route in ipairs(k.app.router:routes()) do
      local operation = doc.paths[route[2]][route[1]:lower()]
      if route.auth then
        assert.same({{bearerAuth = {}}}, operation.security, route[1] .. " " .. route[2])
        assert.is_table(operation.responses["401"], route[1] .. " " .. route[2] .. " lacks 401")
      end
    end
  end)

  it("gives every operation an id, a summary, a tag and a 500 response", function()
    local ids = {}
    for path, item in pairs(doc.paths) do
      for method, operation in pairs(item) do
        local where = method .. " " .. path
        assert.is_string(operation.operationId, where)
        assert.is_nil(ids[operation.operationId], "duplicate operationId " .. operation.operationId)
        ids[operation.operationId] = true
        assert.is_string(operation.summary, where)
        assert.equal(1, #operation.tags, where)
        assert.is_table(operation.responses["500"], where)
      end
    end
  end)

  it("resolves every $ref", function()
    local function walk(node, where)
      if type(node) ~= "table" then return end
      local ref = node["$ref"]
      if ref then
        local section, name = ref:match("^#/components/([^/]+)/(.+)$")
        assert.is_table(section and doc.components[section] and doc.components[section][name],
                        "unresolved " .. ref .. " at " .. where)
      end
      for key, child in pairs(node) do walk(child, where .. "/" .. tostring(key)) end
    end
    walk(doc, "#")
  end)

  it("is served as JSON with the empty security lists as arrays", function()
    local res = k:get("/openapi.json")
    assert.status(200, res)
    assert.equal("3.0.3", res.json.openapi)
    assert.truthy(res.body:find('"security":[{"bearerAuth":[]}]', 1, true))
    assert.truthy(res.body:find('"required":["email","name","password"]', 1, true))
  end)
end)
