-- app.lua — the entry point the host calls: builds the router from the
-- route modules and turns each request into a response.
--
-- The host calls app.handle(req) in a fresh coroutine per request, with
--   req = {method, path, query = {}, headers = {} (lower-case names),
--          body = string|nil, id = request id, remote_addr, query_error}
-- and expects `status, body, headers` back (body: table -> JSON, string ->
-- as is, nil -> empty).
local Router = require "lib.router"
local http = require "lib.http"

local ROUTE_MODULES = {
  "routes.meta",
}

local app = {}

local router = Router.new()
for _, name in ipairs(ROUTE_MODULES) do
  router:add_all(require(name))
end
app.router = router

local function dispatch(req)
  if req.query_error then
    return http.error("bad_request", "the query string is malformed")
  end
  local route, params, allow = router:match(req.method, req.path)
  if route then
    req.params = params
    return route[3](req, params)
  end
  if params == "options" then
    return http.no_content({Allow = allow})
  end
  if params == "method_not_allowed" then
    return http.method_not_allowed(allow)
  end
  return http.error("not_found")
end

function app.handle(req)
  local res = dispatch(req)
  return res.status, res.body, res.headers
end

-- Run by the host before a generation serves: a false return refuses it.
function app.self_check()
  return #router:routes() > 0, "no routes"
end

return app
