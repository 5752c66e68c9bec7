-- lib/router.lua — method and path dispatch. Paths are literal segments or
-- {name} parameters; a path that exists with another method answers 405
-- with Allow, an unknown path 404. HEAD is served by GET, unless that GET
-- route is marked `unsafe` (it changes something: a HEAD must not, RFC 9110
-- 9.2.1), OPTIONS answers with the allowed methods. Adding a route twice is an error: that is how a
-- broken script generation is refused before it serves.
local setmetatable, pairs, ipairs, concat, sort = setmetatable, pairs, ipairs, table.concat, table.sort
local gmatch, match, format = string.gmatch, string.match, string.format

local Router = {}
Router.__index = Router

local METHODS = {GET = true, POST = true, PUT = true, PATCH = true, DELETE = true}

function Router.new()
  return setmetatable({static = {}, dynamic = {}, list = {}}, Router)
end

local function split(path)
  local parts = {}
  for segment in gmatch(path, "[^/]+") do parts[#parts + 1] = segment end
  return parts
end

-- A node holds the handlers of one path pattern, by method.
local function node_for(self, pattern)
  if not match(pattern, "{") then
    local node = self.static[pattern]
    if not node then
      node = {pattern = pattern, handlers = {}}
      self.static[pattern] = node
    end
    return node
  end
  for _, node in ipairs(self.dynamic) do
    if node.pattern == pattern then return node end
  end
  local node = {pattern = pattern, handlers = {}, segments = split(pattern)}
  self.dynamic[#self.dynamic + 1] = node
  return node
end

-- route = {method, pattern, handler, auth = bool, unsafe = bool (a GET that
-- changes something: no HEAD), ...options}
function Router:add(route)
  local method, pattern, handler = route[1], route[2], route[3]
  assert(METHODS[method], format("route %s %s: unknown method", tostring(method), tostring(pattern)))
  assert(type(pattern) == "string" and match(pattern, "^/"), format("route %s: pattern must start with /", method))
  assert(type(handler) == "function", format("route %s %s: handler is not a function", method, pattern))
  local node = node_for(self, pattern)
  if node.handlers[method] then
    error(format("route conflict: %s %s is defined twice", method, pattern), 2)
  end
  node.handlers[method] = route
  self.list[#self.list + 1] = route
  return self
end

function Router:add_all(routes)
  for _, route in ipairs(routes) do self:add(route) end
  return self
end

local function match_dynamic(node, parts)
  local segments = node.segments
  if #segments ~= #parts then return nil end
  local params
  for i = 1, #segments do
    local name = match(segments[i], "^{([%w_]+)}$")
    if name then
      params = params or {}
      params[name] = parts[i]
    elseif segments[i] ~= parts[i] then
      return nil
    end
  end
  return params or {}
end

local function find_node(self, path)
  local node = self.static[path]
  if node then return node, {} end
  if #path > 1 and path:sub(-1) == "/" then
    node = self.static[path:sub(1, -2)]
    if node then return node, {} end
  end
  local parts = split(path)
  for _, candidate in ipairs(self.dynamic) do
    local params = match_dynamic(candidate, parts)
    if params then return candidate, params end
  end
  return nil
end

-- The route that serves HEAD on this node: its GET, when that is safe.
local function head_route(node)
  local get = node.handlers.GET
  if get and not get.unsafe then return get end
  return nil
end

function Router.allow_header(node)
  local methods = {}
  for method in pairs(node.handlers) do methods[#methods + 1] = method end
  if head_route(node) then methods[#methods + 1] = "HEAD" end
  methods[#methods + 1] = "OPTIONS"
  sort(methods)
  return concat(methods, ", ")
end

-- Returns route, params; or nil, "not_found"; or nil, "method_not_allowed",
-- allow, pattern. For OPTIONS the route is nil and the reason is "options"
-- (with allow and pattern too). `pattern` is the path pattern that matched.
function Router:match(method, path)
  local node, params = find_node(self, path)
  if not node then return nil, "not_found" end
  local route = node.handlers[method] or (method == "HEAD" and head_route(node))
  if route then return route, params end
  if method == "OPTIONS" then return nil, "options", Router.allow_header(node), node.pattern end
  return nil, "method_not_allowed", Router.allow_header(node), node.pattern
end

-- Every route, in the order added: {method, pattern, ...}.
function Router:routes()
  return self.list
end

return Router
