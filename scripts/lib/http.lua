-- lib/http.lua — responses and request helpers. Every handler returns a
-- response table {status=, body=, headers=}; errors follow docs/api.md's one
-- shape: {"error": {"code", "message", "fields"?}}.
local cjson = require "cjson.safe"
local json = require "host.json"

local type, pairs, next, setmetatable, tostring, tonumber = type, pairs, next, setmetatable, tostring, tonumber
local find, lower, byte, sub = string.find, string.lower, string.byte, string.sub
local max, ceil, huge = math.max, math.ceil, math.huge

-- Strict JSON: no NaN/Infinity/hex numbers, bounded nesting.
cjson.decode_invalid_numbers(false)
cjson.decode_max_depth(100)

local http = {}

-- The status each error code answers with (docs/api.md, error table), and
-- the message it says unless a handler gives its own. The codes the host
-- answers by itself (request_timeout, headers_too_large, ...) are here too,
-- with the host's status and message: spec/unit/http_errors_spec.lua holds
-- these tables and host/server/http_errors.c's equal.
http.STATUS = {
  bad_request = 400, invalid_json = 400, invalid_token = 400,
  unauthorized = 401, invalid_credentials = 401, token_expired = 401,
  account_not_confirmed = 403,
  not_found = 404,
  method_not_allowed = 405,
  request_timeout = 408,
  conflict = 409,
  payload_too_large = 413,
  unsupported_media_type = 415,
  validation_failed = 422,
  rate_limited = 429,
  headers_too_large = 431,
  internal = 500,
  unavailable = 503,
}

http.MESSAGES = {
  not_found = "no such resource",
  method_not_allowed = "method not allowed on this resource",
  invalid_json = "the body is not valid JSON",
  not_utf8 = "the body is not valid UTF-8",
  duplicate_key = "the body repeats a key inside one object",
  control_in_string = "a string in the body contains a raw control character (escape it)",
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
  payload_too_large = "the request body is larger than this server accepts",
  request_timeout = "the request was not received in time",
  headers_too_large = "the request line or headers are larger than this server accepts",
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

-- 422 validation_failed; `fields` says which field, and why.
function http.validation_failed(fields)
  return http.error("validation_failed", nil, fields)
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

-- True when s is valid UTF-8 (no stray continuation bytes, overlong forms,
-- surrogates, or code points past U+10FFFF). ASCII runs are skipped by find.
local function is_utf8(s)
  local i, len = 1, #s
  while true do
    i = find(s, "[\128-\255]", i)
    if not i then return true end
    local c = byte(s, i)
    local need
    local lo, hi = 0x80, 0xBF -- the bounds of the second byte
    if c >= 0xC2 and c <= 0xDF then need = 1
    elseif c >= 0xE0 and c <= 0xEF then
      need = 2
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      need = 3
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else return false end
    if i + need > len then return false end
    local c2 = byte(s, i + 1)
    if c2 < lo or c2 > hi then return false end
    for j = i + 2, i + need do
      local cc = byte(s, j)
      if cc < 0x80 or cc > 0xBF then return false end
    end
    i = i + need + 1
  end
end
http.is_utf8 = is_utf8

-- What lua-cjson lets through and strict JSON (RFC 8259) does not: a raw
-- control character inside a string (cjson takes a raw tab or newline, and
-- stops reading at a NUL, ignoring whatever follows), and an object that
-- repeats a key (cjson keeps the last one silently; a proxy or WAF in front
-- may keep the first, so the two would disagree about what was sent).
-- Returns the message for a 400, or nil. `text` is what cjson accepted;
-- anything else reads as malformed, never as an error. Keys are compared
-- decoded ("a" and "\u0061" are the same key).
local function strict_json_problem(text)
  if find(text, "%z") then return http.MESSAGES.invalid_json end
  local CONTROL = "[%z\1-\31]"
  local sets, depth, expect_key, pos = {}, 0, false, 1
  local control = find(text, CONTROL) or huge -- the next control character (kept monotonic: O(n))
  while true do
    local at, _, c = find(text, '([{}%[%],:"])', pos)
    if not at then return nil end
    pos = at + 1
    if c == '"' then
      local close = pos
      while true do -- the closing quote: skip escaped characters
        close = find(text, '["\\]', close)
        if not close then return http.MESSAGES.invalid_json end
        if byte(text, close) ~= 92 then break end
        close = close + 2
      end
      if control < pos then control = find(text, CONTROL, pos) or huge end
      if control < close then return http.MESSAGES.control_in_string end
      if expect_key then
        local key = sub(text, at + 1, close - 1)
        if find(key, "\\", 1, true) then key = cjson.decode(sub(text, at, close)) or key end
        local set = sets[depth]
        if set then
          if set[key] then return http.MESSAGES.duplicate_key end
          set[key] = true
        end
        expect_key = false
      end
      pos = close + 1
    elseif c == "{" then
      depth = depth + 1
      sets[depth], expect_key = {}, true
    elseif c == "[" then
      depth = depth + 1
      sets[depth], expect_key = false, false
    elseif c == "}" or c == "]" then
      if depth > 0 then sets[depth], depth = nil, depth - 1 end
      expect_key = false
    elseif c == "," then
      expect_key = sets[depth] and true or false
    else -- ":"
      expect_key = false
    end
  end
end

-- Reads the body as a JSON object. Returns the table, or nil and the error
-- response. An absent body reads as {} so that "{}"-optional routes work.
-- Beyond cjson's own checks: the body must be UTF-8, strings may not hold
-- raw control characters, no object may repeat a key (strict_json_problem),
-- and nesting is bounded (decode_max_depth above).
function http.read_json(req)
  local body = req.body
  if body == nil or body == "" then return {} end
  if not is_json_type(req.headers["content-type"]) then
    return nil, http.error("unsupported_media_type")
  end
  if not is_utf8(body) then
    return nil, http.error("invalid_json", http.MESSAGES.not_utf8)
  end
  local value = cjson.decode(body)
  if value == nil then
    return nil, http.error("invalid_json")
  end
  if type(value) ~= "table" or value[1] ~= nil or (next(value) == nil and find(body, "^%s*%[")) then
    return nil, http.error("invalid_json", http.MESSAGES.not_an_object)
  end
  local problem = strict_json_problem(body)
  if problem then
    return nil, http.error("invalid_json", problem)
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
