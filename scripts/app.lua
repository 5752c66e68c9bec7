-- app.lua — the entry point the host calls: builds the router from the
-- route modules and turns each request into a response.
--
-- The host calls app.handle(req) in a fresh coroutine per request, with
--   req = {method, path, query = {}, headers = {} (lower-case names),
--          body = string|nil, id = request id, remote_addr, query_error}
-- and expects `status, body, headers` back (body: table -> JSON, string ->
-- as is, nil -> empty).
--
-- Before a handler runs, dispatch adds req.params (path parameters) and, for
-- routes marked `auth = true`, req.auth = {admin_id, sid} from the bearer
-- access token (lib/auth.lua), or answers 401 itself; `reads_admin = true`
-- adds req.auth.admin, the admin's row, read by the same statement. A route marked
-- `reads_user = "id"` names the parameter (of the path, else of the query)
-- that holds the id of the one user it reads: the session check reads that
-- user in the same statement, into req.auth.user_id and req.auth.user.
local Router = require "lib.router"
local http = require "lib.http"
local auth = require "lib.auth"
local validate = require "lib.validate"
local metrics = require "host.metrics"
local openapi = require "openapi"
local config = require "lib.config"
local outbox = require "lib.outbox"
local retention = require "lib.retention"

local ROUTE_MODULES = {
  "routes.meta",
  "routes.auth",
  "routes.users",
  "routes.audit",
  "routes.console",
}

local app = {}

local router = Router.new()
for _, name in ipairs(ROUTE_MODULES) do
  router:add_all(require(name))
end
app.router = router

-- The id of the user a `reads_user` route reads, when the request names a
-- valid one; nil otherwise (the handler then answers as it would).
local function user_to_read(route, req, params)
  local name = route.reads_user
  if name == nil then return nil end
  local raw = params[name]
  if raw == nil then raw = req.query[name] end
  if raw == nil then return nil end
  return (validate.id(raw))
end

local function dispatch(req)
  if req.query_error then
    return http.error("bad_request", "the query string is malformed")
  end
  local route, params, allow, pattern = router:match(req.method, req.path)
  -- the request's metrics are labelled with the pattern, never the raw path
  local matched = route and route[2] or pattern
  if matched then metrics.route(matched) end
  if not route then
    if params == "options" then return http.no_content({Allow = allow}) end
    if params == "method_not_allowed" then return http.method_not_allowed(allow) end
    return http.error("not_found")
  end
  req.params = params
  if route.auth then
    local ctx, err = auth.authenticate(req, user_to_read(route, req, params), route.reads_admin)
    if not ctx then return err end
    req.auth = ctx
  end
  if req.body and req.body ~= "" and not http.is_json_type(req.headers["content-type"]) then
    return http.error("unsupported_media_type")
  end
  return route[3](req, params)
end

function app.handle(req)
  req.query = req.query or {}
  req.headers = req.headers or {}
  local res = dispatch(req)
  return res.status, res.body, res.headers
end

-- Background jobs: the host runs each `run` in a task of its own every
-- `every` seconds in every worker, one run of a job at a time per worker
-- (docs/scripting.md, "Jobs").
app.jobs = {
  mail = {every = config.mail_poll, run = outbox.run},
  retention = {every = config.retention_sweep, run = retention.run},
}

-- Run by the host before a generation serves: a false return refuses it.
-- Every route must be in the OpenAPI document, and nothing else.
function app.self_check()
  if #router:routes() == 0 then return false, "no routes" end
  return openapi.check(router:routes())
end

return app
