-- lib/views.lua — what a client sees of a row (API.md, Objects). Fields are
-- listed, never copied wholesale, so a column added to a table (or a hash)
-- cannot leak into a response by accident.
local json = require "host.json"

local ipairs, type, gsub = ipairs, type, string.gsub

local views = {}

-- API.md's timestamps: RFC 3339 in UTC to the second ("2026-12-01T13:45:00Z");
-- the database gives microseconds, which no client needs.
local function timestamp(ts)
  if type(ts) ~= "string" then return ts end
  return (gsub(ts, "%.%d+Z$", "Z"))
end
views.timestamp = timestamp

-- Admin = {id, email, name, confirmed, created_at, updated_at}
function views.admin(row)
  return {
    id = row.id,
    email = row.email,
    name = row.name,
    confirmed = row.confirmed,
    created_at = timestamp(row.created_at),
    updated_at = timestamp(row.updated_at),
  }
end

-- User = {id, email, name, active, created_by, created_at, updated_at};
-- name and created_by may be null (cjson.null from the database).
function views.user(row)
  return {
    id = row.id,
    email = row.email,
    name = row.name,
    active = row.active,
    created_by = row.created_by,
    created_at = timestamp(row.created_at),
    updated_at = timestamp(row.updated_at),
  }
end

-- Event = {id, at, actor_id, action, target_type, target_id, request_id,
-- client, detail}; detail is an object (the database keeps one per event).
function views.audit_event(row)
  return {
    id = row.id,
    at = timestamp(row.at),
    actor_id = row.actor_id,
    action = row.action,
    target_type = row.target_type,
    target_id = row.target_id,
    request_id = row.request_id,
    client = row.client,
    detail = row.detail,
  }
end

-- A JSON array (even when empty) of view(row) for the first `n` rows.
function views.list(rows, view, n)
  local out = json.array({})
  for i, row in ipairs(rows) do
    if n and i > n then break end
    out[i] = view(row)
  end
  return out
end

return views
