-- routes/users.lua — the users admins manage: the original service's
-- /user?id=N routes and their REST form /users/{id}. Every route needs an
-- access token; created_by is the admin who created the user.
local log = require "host.log"
local auth = require "lib.auth"
local audit = require "lib.audit"
local http = require "lib.http"
local store = require "lib.store"
local validate = require "lib.validate"
local views = require "lib.views"
local page = require "lib.page"

local next = next
local find = string.find

local MSG = {
  id_missing = "the id query parameter is required",
  not_found = "no such user",
}

local function validation_failed(fields)
  return http.error("validation_failed", nil, fields)
end

-- The id of /users/{id} or /user?id=N, or nil and a 400.
local function user_id(req, params)
  local raw = params and params.id
  if raw == nil then raw = req.query.id end
  if raw == nil then return nil, http.error("bad_request", MSG.id_missing) end
  local id, msg = validate.id(raw)
  if not id then return nil, http.error("bad_request", "id " .. msg) end
  return id
end

-- GET /users/{id} and GET /user?id=N read one row: the session check reads
-- it in the same statement (lib/auth.lua, read_user_with_session). Runs
-- before the handler, for every authenticated request.
auth.read_user_with_session(function(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then return nil end
  local raw
  if req.path == "/user" or req.path == "/user/" then
    raw = req.query.id
  elseif req.params and find(req.path, "^/users/[^/]+/?$") then
    raw = req.params.id
  end
  if raw == nil then return nil end
  return (validate.id(raw))
end)

local function user_reply(row)
  return {user = views.user(row)}
end

-- POST /user, /users {email, name?, active?} -> 201 {user}
local function create(req)
  local body, err = http.read_json(req)
  if not body then return err end
  local input, fields = validate.user_create(body)
  if not input then return validation_failed(fields) end
  local user, events
  user, err, events = store:create_user(input.email, input.name, input.active, req.auth.admin_id, audit.context(req))
  if not user then return err end
  audit.log(events)
  log.info("user created", {user_id = user.id, admin_id = req.auth.admin_id})
  return http.created(user_reply(user), {Location = "/users/" .. validate.id(user.id)})
end

-- GET /user?id=N, /users/{id} -> 200 {user}
local function show(req, params)
  local id, err = user_id(req, params)
  if not id then return err end
  local user
  if req.auth.user_id == id then
    user = req.auth.user -- read with the session check
  else
    user, err = store:find_user(id)
    if err then return err end
  end
  if not user then return http.error("not_found", MSG.not_found) end
  return http.ok(user_reply(user))
end

-- PUT /user?id=N, PUT/PATCH /users/{id} {email?, name?, active?} -> 200 {user};
-- a partial update: absent keys stay as they are, "name": null clears it.
local function update(req, params)
  local id, err = user_id(req, params)
  if not id then return err end
  local body
  body, err = http.read_json(req)
  if not body then return err end
  local changes, fields = validate.user_update(body)
  if not changes then return validation_failed(fields) end
  local user, events
  if next(changes) == nil then
    user, err = store:find_user(id)
  else
    user, err, events = store:update_user(id, changes, audit.context(req))
  end
  if err then return err end
  audit.log(events)
  if not user then return http.error("not_found", MSG.not_found) end
  return http.ok(user_reply(user))
end

-- DELETE /user?id=N, /users/{id} -> 200 {user}: what was deleted
local function delete(req, params)
  local id, err = user_id(req, params)
  if not id then return err end
  local user, events
  user, err, events = store:delete_user(id, audit.context(req))
  if err then return err end
  audit.log(events)
  if not user then return http.error("not_found", MSG.not_found) end
  log.info("user deleted", {user_id = user.id, admin_id = req.auth.admin_id})
  return http.ok(user_reply(user))
end

-- GET /users?limit=&cursor=&q= -> 200 {users, next_cursor}
local list = page.handler("users", function(...) return store:list_users(...) end, views.user)

return {
  {"POST", "/user", create, auth = true},
  {"GET", "/user", show, auth = true},
  {"PUT", "/user", update, auth = true},
  {"DELETE", "/user", delete, auth = true},
  {"GET", "/users", list, auth = true},
  {"POST", "/users", create, auth = true},
  {"GET", "/users/{id}", show, auth = true},
  {"PUT", "/users/{id}", update, auth = true},
  {"PATCH", "/users/{id}", update, auth = true},
  {"DELETE", "/users/{id}", delete, auth = true},
}
