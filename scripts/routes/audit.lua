-- routes/audit.lua — GET /audit: the audit trail (docs/audit.md), newest
-- first, a page at a time, filtered by actor, action, target and time.
local http = require "lib.http"
local store = require "lib.store"
local validate = require "lib.validate"
local views = require "lib.views"
local cursor = require "lib.cursor"
local page = require "lib.page"
local audit = require "lib.audit"

local LIST = "audit"

-- GET /audit?limit=&cursor=&actor=&action=&target=&since=&until=
--   -> 200 {events, next_cursor}
-- limit and cursor as /users (400); a malformed filter is 422 with fields.
local function list(req)
  local query = req.query
  local limit, msg = validate.limit(query.limit, page.DEFAULT_LIMIT)
  if not limit then return http.error("bad_request", "limit " .. msg) end
  local before
  if query.cursor ~= nil then
    before, msg = cursor.decode(LIST, query.cursor)
    if not before then return http.error("bad_request", msg) end
  end
  local filters, fields = validate.audit_filters(query, audit.ACTION)
  if not filters then return http.error("validation_failed", nil, fields) end
  local rows, err = store:list_audit(before, limit + 1, filters)
  if not rows then return err end
  local events, next_cursor = page.result(rows, {limit = limit}, LIST, views.audit_event)
  return http.ok({events = events, next_cursor = next_cursor})
end

return {
  {"GET", "/audit", list, auth = true},
}
