-- lib/router.lua: method and path dispatch.
local Router = require "lib.router"

local function handler() end

local function router_with(routes)
  return Router.new():add_all(routes)
end

describe("Router", function()
  local r

  before_each(function()
    r = router_with({
      {"GET", "/users", handler, auth = true},
      {"POST", "/users", handler},
      {"GET", "/users/{id}", handler},
      {"DELETE", "/users/{id}", handler},
      {"GET", "/users/{id}/notes/{note}", handler},
      {"GET", "/", handler},
    })
  end)

  it("matches a static path and keeps the route's options", function()
    local route, params = r:match("GET", "/users")
    assert.equal("/users", route[2])
    assert.is_true(route.auth)
    assert.same({}, params)
  end)

  it("matches a trailing slash on a static path", function()
    assert.is_not_nil(r:match("GET", "/users/"))
  end)

  it("captures path parameters", function()
    local route, params = r:match("GET", "/users/42/notes/7")
    assert.equal("/users/{id}/notes/{note}", route[2])
    assert.same({id = "42", note = "7"}, params)
  end)

  it("returns not_found for an unknown path", function()
    assert.same({nil, "not_found"}, {r:match("GET", "/nope")})
    assert.same({nil, "not_found"}, {r:match("GET", "/users/1/2")})
  end)

  it("returns method_not_allowed with the Allow list for a known path", function()
    local route, why, allow = r:match("PUT", "/users/1")
    assert.is_nil(route)
    assert.equal("method_not_allowed", why)
    assert.equal("DELETE, GET, HEAD, OPTIONS", allow)
  end)

  it("serves HEAD with the GET route", function()
    local route = r:match("HEAD", "/users")
    assert.equal("GET", route[1])
  end)

  it("answers OPTIONS with the allowed methods", function()
    local route, why, allow = r:match("OPTIONS", "/users")
    assert.is_nil(route)
    assert.equal("options", why)
    assert.equal("GET, HEAD, OPTIONS, POST", allow)
  end)

  it("refuses a route defined twice", function()
    assert.has_error(function()
      r:add({"GET", "/users", handler})
    end, "route conflict: GET /users is defined twice")
  end)

  it("refuses an unknown method, a relative pattern and a missing handler", function()
    assert.has_error(function() r:add({"FETCH", "/x", handler}) end)
    assert.has_error(function() r:add({"GET", "x", handler}) end)
    assert.has_error(function() r:add({"GET", "/x"}) end)
  end)

  it("lists every route in the order added", function()
    local list = r:routes()
    assert.equal(6, #list)
    assert.equal("POST", list[2][1])
  end)
end)

describe("the application's router", function()
  local kit = require "support.kit"

  it("marks every /users and /user route, and /auth/me, as needing auth", function()
    local k = kit.new()
    for _, route in ipairs(k.app.router:routes()) do
      local path = route[2]
      if path:match("^/users?") or path == "/auth/me" or path == "/auth/admins" or path == "/auth/logout" then
        assert.is_true(route.auth == true, route[1] .. " " .. path .. " must need auth")
      end
    end
  end)

  it("leaves the public routes public", function()
    local k = kit.new()
    local public = {["/"] = true, ["/healthz"] = true, ["/readyz"] = true, ["/openapi.json"] = true,
                    ["/apidocs"] = true, ["/auth/login"] = true, ["/auth/register"] = true}
    for _, route in ipairs(k.app.router:routes()) do
      if public[route[2]] then assert.is_nil(route.auth) end
    end
  end)
end)
