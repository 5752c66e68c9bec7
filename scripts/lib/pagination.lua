-- lib/pagination.lua — keyset pagination shared by GET /users and GET /auth/admins:
-- ?limit= (1..100, default 20), ?cursor= (opaque, lib/cursor.lua), ?q=
-- (email or name contains, case-insensitive), ordered by id.
local http = require "lib.http"
local validate = require "lib.validate"
local cursor = require "lib.cursor"
local views = require "lib.views"

local format = string.format
local null = http.null

local page = {}

page.DEFAULT_LIMIT = 20

-- {after = id string, limit = n, pattern = LIKE pattern|nil}, or nil and a
-- 400 response naming the parameter.
function page.params(req, list)
  local query = req.query or {}
  local limit, msg = validate.limit(query.limit, page.DEFAULT_LIMIT)
  if not limit then return nil, http.error("bad_request", "limit " .. msg) end
  local after = "0"
  if query.cursor ~= nil then
    after, msg = cursor.decode(list, query.cursor)
    if not after then return nil, http.error("bad_request", msg) end
  end
  local q
  q, msg = validate.search(query.q)
  if q == nil then return nil, http.error("bad_request", "q " .. msg) end
  return {after = after, limit = limit, pattern = q and validate.contains_pattern(q) or nil}
end

-- Rows were fetched with limit + 1: the extra one says there is a next page.
-- A fetch that stopped before the end of the list with fewer rows (a search
-- that reads a bounded window: lib/store.lua, list_users_scan) says where
-- the next page starts in rows.resume_after. Returns the JSON array of
-- views and next_cursor (a string, or null).
function page.result(rows, params, list, view)
  local items = views.list(rows, view, params.limit)
  local next_cursor = null
  if #rows > params.limit then
    next_cursor = cursor.encode(list, format("%.0f", rows[params.limit].id))
  elseif rows.resume_after then
    next_cursor = cursor.encode(list, rows.resume_after)
  end
  return items, next_cursor
end

-- The handler of a list route: GET ?limit=&cursor=&q= -> 200
-- {<list> = [view(row)...], next_cursor}. `fetch(after, limit, pattern)`
-- returns the rows (one more than a page, to know whether there is a next)
-- or nil and an error response.
function page.handler(list, fetch, view)
  return function(req)
    local params, err = page.params(req, list)
    if not params then return err end
    local rows
    rows, err = fetch(params.after, params.limit + 1, params.pattern)
    if not rows then return err end
    local items, next_cursor = page.result(rows, params, list, view)
    return http.ok({[list] = items, next_cursor = next_cursor})
  end
end

return page
