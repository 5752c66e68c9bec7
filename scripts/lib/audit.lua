-- lib/audit.lua — the audit trail (docs/audit.md): every state change by or
-- to an admin is a row of audit_events, written by the statement or in the
-- transaction that makes the change (lib/store.lua), and, once that has
-- committed, one log line "audit" (here).
--
-- A store method that records takes an audit context, ctx = audit.context(req):
--   {actor_id = the admin the request proved to be (access token, password,
--               refresh token) or null, request_id = X-Request-Id,
--    client = the client address of the access log}
-- and returns the events it wrote as its last result (a list, maybe empty):
--   {id, at, actor_id, action, target_type, target_id, request_id, client, detail}
local log = require "host.log"
local cjson = require "cjson.safe"

local type, ipairs, error, tostring = type, ipairs, error, tostring
local null = cjson.null

local audit = {}

-- Every action, in the order docs/audit.md lists them (the OpenAPI enum and
-- migrations/0007's CHECK list the same).
audit.ACTIONS = {
  "admin.registered", "admin.confirmed", "admin.login", "admin.login_failed",
  "admin.refreshed", "admin.refresh_reuse", "admin.logout", "admin.logout_all",
  "admin.password_changed", "admin.password_reset", "admin.email_changed",
  "admin.updated", "admin.deleted",
  "user.created", "user.updated", "user.deleted",
  "admin.imported", "user.imported",
}
audit.ACTION = {}
for _, action in ipairs(audit.ACTIONS) do audit.ACTION[action] = true end

-- The context of the events of request `req`. `actor_id` (an id string)
-- names the actor when the request proved who it is without an access
-- token (a login, a refresh); false makes it anonymous even with one.
function audit.context(req, actor_id)
  if actor_id == nil then actor_id = req.auth and req.auth.admin_id end
  return {
    actor_id = actor_id or null,
    request_id = req.id or null,
    client = req.client_addr or req.remote_addr or null,
  }
end

-- The same context with another actor (false or nil: anonymous).
function audit.as(ctx, actor_id)
  ctx = ctx or {}
  return {actor_id = actor_id or null, request_id = ctx.request_id, client = ctx.client}
end

-- An event to hand to store:record, for the changes whose statements do not
-- write their own (target_id nil for a target that does not exist, such as
-- the admin of an unknown email).
function audit.event(ctx, action, target_type, target_id, detail)
  if not audit.ACTION[action] then error("unknown audit action: " .. tostring(action), 2) end
  return {
    actor_id = ctx.actor_id, action = action, target_type = target_type or null,
    target_id = target_id or null, request_id = ctx.request_id, client = ctx.client,
    detail = detail or {},
  }
end

-- Writes one log line per event of `events` (a list, or nil): call it once
-- the statement or transaction that wrote them has committed. The line
-- carries the request id (host.log adds it) and the event's own fields.
function audit.log(events)
  if type(events) ~= "table" then return end
  for _, e in ipairs(events) do
    log.info("audit", {
      audit_id = e.id, action = e.action, actor_id = e.actor_id, target_type = e.target_type,
      target_id = e.target_id, client = e.client, detail = e.detail,
    })
  end
end

return audit
