-- lib/http.lua — responses and request helpers. Every handler returns a
-- response table {status=, body=, headers=}; errors follow API.md's one
-- shape: {"error": {"code", "message", "fields"?}}.
local cjson = require "cjson.safe"
local json = require "host.json"

local type, pairs, next, setmetatable, tostring, tonumber = type, pairs, next, setmetatable, tostring, tonumber
local find, lower = string.find, string.lower
local max, ceil = math.max, math.ceil

-- Strict JSON: no NaN/Infinity/hex numbers, bounded nesting.
cjson.decode_invalid_numbers(false)
cjson.decode_max_depth(100)

local http = {}

-- The status each error code answers with (API.md, error table).
http.STATUS = {
  bad_request = 400, invalid_json = 400, invalid_token = 400,
  unauthorized = 401, invalid_credentials = 401, token_expired = 401,
  account_not_confirmed = 403,
  not_found = 404,
  method_not_allowed = 405,
  conflict = 409,
  payload_too_large = 413,
  unsupported_media_type = 415,
  validation_failed = 422,
  rate_limited = 429,
  internal = 500,
  unavailable = 503,
}

http.MESSAGES = {
  not_found = "no such resource",
  method_not_allowed = "method not allowed on this resource",
  invalid_json = "the body is not valid JSON",
  not_an_object = "the body must be a JSON object",
  unsupported_media_type = "send the body as application/json",
  unauthorized = "authentication required",
  internal = "internal server error",
  unavailable = "the service is temporarily unavailable",
  validation_failed = "some fields are not valid",
  bad_request = "the request is not valid",
  invalid_token = "the link is invalid, expired or already used",
  invalid_credentials = "the email or the password is not correct",
  token_expired = "the access token has expired",
  account_not_confirmed = "confirm your email address before logging in",
  conflict = "already in use",
  rate_limited = "too many attempts; try again later",
  payload_too_large = "the body is too large",
}

function http.response(status, body, headers)
  return {status = status, body = body, headers = headers}
end

function http.ok(body, headers) return http.response(200, body, headers) end
function http.created(body, headers) return http.response(201, body, headers) end
function http.accepted(body) return http.response(202, body or {status = "accepted"}) end
function http.no_content(headers) return http.response(204, nil, headers) end

-- http.error("conflict", "email already in use", {email = "is taken"})
function http.error(code, message, fields, headers)
  local status = http.STATUS[code]
  if not status then error("unknown error code: " .. tostring(code), 2) end
  local err = {code = code, message = message or http.MESSAGES[code] or code}
  if fields ~= nil then err.fields = fields end
  return http.response(status, {error = err}, headers)
end

function http.unauthorized(code, message)
  return http.error(code or "unauthorized", message, nil, {["WWW-Authenticate"] = "Bearer"})
end

-- 429 with Retry-After (whole seconds, at least 1).
function http.rate_limited(retry_after, message)
  local seconds = max(1, ceil(tonumber(retry_after) or 1))
  return http.error("rate_limited", message, nil, {["Retry-After"] = tostring(seconds)})
end

-- An HTML page (the confirmation result, the reset form, Swagger UI).
function http.html(status, html, headers)
  headers = headers or {}
  headers["Content-Type"] = "text/html; charset=utf-8"
  return http.response(status, html, headers)
end

-- True when the client says it takes HTML (a browser following a link).
function http.wants_html(req)
  local accept = req.headers and req.headers.accept
  return accept ~= nil and find(lower(accept), "text/html", 1, true) ~= nil
end

-- The bearer token of the Authorization header, or nil.
function http.bearer_token(req)
  local value = req.headers and req.headers.authorization
  if not value then return nil end
  return value:match("^%s*[Bb][Ee][Aa][Rr][Ee][Rr]%s+([^%s,]+)%s*$")
end

function http.method_not_allowed(allow)
  return http.error("method_not_allowed", nil, nil, {Allow = allow})
end

-- A list that encodes as a JSON array even when empty.
http.array = json.array
http.null = cjson.null

local function is_json_type(content_type)
  if not content_type then return false end
  content_type = lower(content_type)
  return find(content_type, "^application/json") ~= nil
      or find(content_type, "^application/[%w.-]+%+json") ~= nil
end

http.is_json_type = is_json_type

-- Reads the body as a JSON object. Returns the table, or nil and the error
-- response. An absent body reads as {} so that "{}"-optional routes work.
function http.read_json(req)
  local body = req.body
  if body == nil or body == "" then return {} end
  if not is_json_type(req.headers["content-type"]) then
    return nil, http.error("unsupported_media_type")
  end
  local value = cjson.decode(body)
  if value == nil then
    return nil, http.error("invalid_json")
  end
  if type(value) ~= "table" or value[1] ~= nil or (next(value) == nil and find(body, "^%s*%[")) then
    return nil, http.error("invalid_json", http.MESSAGES.not_an_object)
  end
  return value
end

-- Shallow copy without the given keys: what the client may see of a row.
function http.without(row, hidden)
  local out = {}
  for k, v in pairs(row) do
    if not hidden[k] then out[k] = v end
  end
  return out
end

setmetatable(http, {__index = function(_, k) error("http." .. tostring(k) .. " does not exist", 2) end})
return http
