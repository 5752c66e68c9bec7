-- lib/validate.lua — the field rules of API.md. Each rule takes a decoded
-- JSON value and returns the cleaned value, or nil and a message; each body
-- checker returns the cleaned input, or nil and a `fields` table
-- ({field = message}) for a 422. Fields a body checker does not know are
-- ignored (the OpenAPI document says so).
local cjson = require "cjson.safe"

local type, ipairs, tonumber = type, ipairs, tonumber
local byte, find, match, gmatch, gsub, lower, format, sub =
  string.byte, string.find, string.match, string.gmatch, string.gsub, string.lower, string.format, string.sub
local floor = math.floor
local null = cjson.null

local validate = {}

local EMAIL_MAX = 254
local EMAIL_LOCAL_MAX = 64
local DOMAIN_LABEL_MAX = 63
local ADMIN_NAME_MIN, ADMIN_NAME_MAX = 3, 32
local USER_NAME_MAX = 100
local PASSWORD_MIN, PASSWORD_MAX = 8, 128
local LOGIN_PASSWORD_MAX_BYTES = 4096 -- longer cannot match a stored password
local TOKEN_MAX_BYTES = 512
local LIMIT_MIN, LIMIT_MAX = 1, 100
local ID_MAX = "9223372036854775807" -- 2^63 - 1, PostgreSQL's bigint

local MSG = {
  required = "is required",
  not_null = "must not be null",
  string = "must be a string",
  boolean = "must be true or false",
  utf8 = "is not valid UTF-8",
  control = "must not contain control characters",
  email = "is not a valid email address",
  email_long = format("is too long (at most %d characters)", EMAIL_MAX),
  email_ascii = "must be written in ASCII (addresses with other characters are not supported)",
  admin_name = format("must be %d to %d characters of letters, digits, '_', '-' or '.'",
                      ADMIN_NAME_MIN, ADMIN_NAME_MAX),
  user_name_long = format("is too long (at most %d characters)", USER_NAME_MAX),
  password_length = format("must be %d to %d characters long", PASSWORD_MIN, PASSWORD_MAX),
  password_is_email = "must not be the same as the email address",
  password_is_name = "must not be the same as the name",
  empty = "must not be empty",
  too_long = "is too long",
  id = "must be a positive whole number that fits in 64 bits",
  limit = format("must be a whole number from %d to %d", LIMIT_MIN, LIMIT_MAX),
  flag = "must be true or false",
  timestamp = "must be an RFC 3339 date and time, such as 2026-12-01T13:45:00Z",
  target = "must be user:<id> or admin:<id>",
  action = "is not an audit action (the enum of this parameter in /openapi.json lists them)",
}
validate.MESSAGES = MSG

-- ---- strings ----------------------------------------------------------------

-- Number of code points of a UTF-8 string, or nil when it is not valid UTF-8
-- (stray continuation bytes, overlong forms, surrogates, past U+10FFFF).
function validate.utf8_length(s)
  local i, n, len = 1, 0, #s
  while i <= len do
    local c = byte(s, i)
    local need, cp, min
    if c < 0x80 then need, cp, min = 0, c, 0
    elseif c >= 0xC2 and c <= 0xDF then need, cp, min = 1, c - 0xC0, 0x80
    elseif c >= 0xE0 and c <= 0xEF then need, cp, min = 2, c - 0xE0, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then need, cp, min = 3, c - 0xF0, 0x10000
    else return nil end
    if i + need > len then return nil end
    for j = i + 1, i + need do
      local cc = byte(s, j)
      if cc < 0x80 or cc > 0xBF then return nil end
      cp = cp * 64 + (cc - 0x80)
    end
    if cp < min or (cp >= 0xD800 and cp <= 0xDFFF) or cp > 0x10FFFF then return nil end
    i = i + need + 1
    n = n + 1
  end
  return n
end
local utf8_length = validate.utf8_length

-- C0 controls, DEL, and the C1 controls U+0080..U+009F (UTF-8: C2 80..C2 9F).
local function has_control(s)
  return find(s, "[%z\1-\31\127]") ~= nil or find(s, "\194[\128-\159]") ~= nil
end
validate.has_control = has_control

local function trim(s)
  return (gsub(gsub(s, "^[ \t]+", ""), "[ \t]+$", ""))
end

-- ---- field rules ------------------------------------------------------------

-- The canonical form of an email address, the only one the service stores,
-- looks up and keys its limits by (migrations/0004): trimmed, ASCII only
-- (mail goes to ASCII addresses only; a Unicode case variant such as U+212A
-- for "k" must not be a second spelling of one address), letters
-- lower-cased; at most 254 characters, exactly one @, a non-empty local
-- part, a dotted domain.
function validate.email(v)
  if type(v) ~= "string" then return nil, MSG.string end
  v = trim(v)
  if v == "" then return nil, MSG.required end
  local n = utf8_length(v)
  if not n then return nil, MSG.utf8 end
  if has_control(v) then return nil, MSG.email end
  if n > EMAIL_MAX then return nil, MSG.email_long end
  if find(v, "[\128-\255]") then return nil, MSG.email_ascii end
  v = lower(v)
  local local_part, domain = match(v, "^([^@]+)@([^@]+)$")
  if not local_part or #local_part > EMAIL_LOCAL_MAX then return nil, MSG.email end
  if find(local_part, "[%s<>()%[%]\\,;:\"]") or find(local_part, "^%.") or find(local_part, "%.$")
      or find(local_part, "..", 1, true) then
    return nil, MSG.email
  end
  if not find(domain, ".", 1, true) then return nil, MSG.email end
  local labels, last = 0, nil
  for label in gmatch(domain .. ".", "([^.]*)%.") do
    if label == "" or #label > DOMAIN_LABEL_MAX or not match(label, "^[%w-]+$")
        or find(label, "^%-") or find(label, "%-$") then
      return nil, MSG.email
    end
    labels, last = labels + 1, label
  end
  if labels < 2 or match(last, "^%d+$") then return nil, MSG.email end
  return v
end

-- Admin name: 3 to 32 of letters, digits, '_', '-', '.'; kept as written
-- (uniqueness is case-insensitive in the database).
function validate.admin_name(v)
  if type(v) ~= "string" then return nil, MSG.string end
  if #v < ADMIN_NAME_MIN or #v > ADMIN_NAME_MAX or not match(v, "^[%w_.-]+$") then
    return nil, MSG.admin_name
  end
  return v
end

-- User name: optional, at most 100 characters, no control characters.
function validate.user_name(v)
  if type(v) ~= "string" then return nil, MSG.string end
  local n = utf8_length(v)
  if not n then return nil, MSG.utf8 end
  if has_control(v) then return nil, MSG.control end
  if n > USER_NAME_MAX then return nil, MSG.user_name_long end
  return v
end

-- A new password: 8 to 128 code points (sameness with the email and the
-- name is checked by the body checkers, which know both).
function validate.password(v)
  if type(v) ~= "string" then return nil, MSG.string end
  local n = utf8_length(v)
  if not n then return nil, MSG.utf8 end
  if n < PASSWORD_MIN or n > PASSWORD_MAX then return nil, MSG.password_length end
  return v
end

-- A password being checked against a stored hash (login, current_password):
-- any non-empty string; the length rules are for new passwords only.
function validate.given_password(v)
  if type(v) ~= "string" then return nil, MSG.string end
  if v == "" then return nil, MSG.empty end
  if #v > LOGIN_PASSWORD_MAX_BYTES then return nil, MSG.too_long end
  return v
end

-- An opaque token from a link (confirmation, reset).
function validate.token(v)
  if type(v) ~= "string" then return nil, MSG.string end
  if v == "" then return nil, MSG.empty end
  if #v > TOKEN_MAX_BYTES then return nil, MSG.too_long end
  return v
end

function validate.boolean(v)
  if type(v) ~= "boolean" then return nil, MSG.boolean end
  return v
end

-- An id: a positive integer that fits in a signed 64-bit integer, as
-- decimal digits (path, query) or a JSON number. Returns it as a canonical
-- decimal string (Lua numbers are doubles: past 2^53 they would round), which
-- is how it goes to the database.
function validate.id(v)
  if type(v) == "number" then
    if v ~= v or v < 1 or v ~= floor(v) or v >= 2 ^ 63 then return nil, MSG.id end
    return format("%.0f", v)
  end
  if type(v) ~= "string" or not match(v, "^%d+$") then return nil, MSG.id end
  v = gsub(v, "^0+", "")
  if v == "" or #v > #ID_MAX or (#v == #ID_MAX and v > ID_MAX) then return nil, MSG.id end
  return v
end

-- ?limit=: decimal digits, 1..100; absent means `default`.
function validate.limit(v, default)
  if v == nil then return default end
  if type(v) ~= "string" or not match(v, "^%d+$") or #v > 3 then return nil, MSG.limit end
  local n = tonumber(v)
  if n < LIMIT_MIN or n > LIMIT_MAX then return nil, MSG.limit end
  return n
end

-- A boolean query parameter (?all=true): true/false/1/0; absent is false.
function validate.flag(v)
  if v == nil then return false end
  if v == "true" or v == "1" then return true end
  if v == "false" or v == "0" then return false end
  return nil, MSG.flag
end

-- An RFC 3339 date and time (2026-12-01T13:45:00Z, 2026-12-01T14:45:00.5+01:00):
-- the string as the database reads it, or nil and a message. Every field is
-- range-checked here (a 30 February must be a 422, not a database error). A
-- space before the offset reads as '+' (an unencoded + in a query string).
local DAYS_IN_MONTH = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

function validate.timestamp(v)
  if type(v) ~= "string" or #v > 40 then return nil, MSG.timestamp end
  local y, mo, d, h, mi, sec, frac, zone =
    match(v, "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt](%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y or frac == "." then return nil, MSG.timestamp end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  local days = mo >= 1 and mo <= 12 and (mo == 2 and leap and 29 or DAYS_IN_MONTH[mo])
  if y < 1 or not days or d < 1 or d > days or h > 23 or mi > 59 or sec > 60 then return nil, MSG.timestamp end
  if zone ~= "Z" and zone ~= "z" then
    local sign, zh, zm = match(zone, "^([+ -])(%d%d):(%d%d)$")
    if not sign or tonumber(zh) > 23 or tonumber(zm) > 59 then return nil, MSG.timestamp end
    if sign == " " then v = sub(v, 1, #v - 6) .. "+" .. sub(v, #v - 4) end
  end
  return v
end

-- ?target= of GET /audit: "user:12" or "admin:3" -> type, id string; or nil
-- and a message.
function validate.audit_target(v)
  if type(v) ~= "string" then return nil, MSG.target end
  local kind, raw = match(v, "^(%l+):(%d+)$")
  if kind ~= "user" and kind ~= "admin" then return nil, MSG.target end
  local id = validate.id(raw)
  if not id then return nil, MSG.target end
  return kind, id
end

-- ---- body checkers ------------------------------------------------------------

-- rules: list of {name, rule, required = bool, nullable = bool}. A JSON null
-- is "absent" for a required field, the value null for a nullable one, and an
-- error otherwise.
local function check(body, rules)
  local out, fields = {}, nil
  for _, r in ipairs(rules) do
    local name, v = r[1], body[r[1]]
    local clean, msg
    if v == nil or v == null then
      if r.required then msg = MSG.required
      elseif v == null then
        if r.nullable then clean = null else msg = MSG.not_null end
      end
    else
      clean, msg = r[2](v)
    end
    if msg then
      fields = fields or {}
      fields[name] = msg
    elseif clean ~= nil then
      out[name] = clean
    end
  end
  return out, fields
end

-- A new password must differ from the email and the name (case-insensitively).
local function password_differs(fields, password, email, name)
  if not password then return fields end
  local lowered = lower(password)
  local msg
  if email and lowered == lower(email) then msg = MSG.password_is_email
  elseif name and lowered == lower(name) then msg = MSG.password_is_name end
  if msg then
    fields = fields or {}
    fields.password = fields.password or msg
  end
  return fields
end
validate.password_differs = password_differs

local function result(out, fields)
  if fields then return nil, fields end
  return out
end

-- POST /auth/register: {email, name, password}
function validate.register(body)
  local out, fields = check(body, {
    {"email", validate.email, required = true},
    {"name", validate.admin_name, required = true},
    {"password", validate.password, required = true},
  })
  return result(out, password_differs(fields, out.password, out.email, out.name))
end

-- POST /auth/login: {email, password}
function validate.login(body)
  return result(check(body, {
    {"email", validate.email, required = true},
    {"password", validate.given_password, required = true},
  }))
end

-- POST /auth/confirm/resend, /auth/password/forgot: {email}
function validate.email_request(body)
  return result(check(body, {
    {"email", validate.email, required = true},
  }))
end

-- POST /auth/password/reset: {token, password}. The password's sameness with
-- the email and name is checked once the token says whose it is.
function validate.password_reset(body)
  return result(check(body, {
    {"token", validate.token, required = true},
    {"password", validate.password, required = true},
  }))
end

-- PUT /auth/me: {name?, email?, password?, current_password?}. `current` is
-- the admin as stored; whether current_password is needed depends on it.
function validate.admin_update(body, current)
  local out, fields = check(body, {
    {"name", validate.admin_name},
    {"email", validate.email},
    {"password", validate.password},
    {"current_password", validate.given_password},
  })
  if out.email == current.email then out.email = nil end
  if (out.email or out.password) and not out.current_password
      and not (fields and fields.current_password) then
    fields = fields or {}
    fields.current_password = "is required to change the email or the password"
  end
  fields = password_differs(fields, out.password, out.email or current.email, out.name or current.name)
  return result(out, fields)
end

-- DELETE /auth/me: {current_password}
function validate.current_password(body)
  return result(check(body, {
    {"current_password", validate.given_password, required = true},
  }))
end

-- POST /user, /users: {email, name?, active?}
function validate.user_create(body)
  local out, fields = check(body, {
    {"email", validate.email, required = true},
    {"name", validate.user_name, nullable = true},
    {"active", validate.boolean},
  })
  if out.name == nil then out.name = null end
  if out.active == nil then out.active = true end
  return result(out, fields)
end

-- PUT/PATCH /user, /users/{id}: {email?, name?, active?}; name may be null
-- (clears it). A key that is absent leaves the column as it is.
function validate.user_update(body)
  return result(check(body, {
    {"email", validate.email},
    {"name", validate.user_name, nullable = true},
    {"active", validate.boolean},
  }))
end

-- GET /audit's filters: ?actor= (admin id), ?action= (one of `actions`, a
-- set), ?target= (user:<id>, admin:<id>), ?since=, ?until= (RFC 3339), each
-- optional. Returns {actor=, action=, target_type=, target_id=, since=,
-- until=}, or nil and a `fields` table for a 422.
function validate.audit_filters(query, actions)
  local out, fields = {}, nil
  local function bad(name, msg)
    fields = fields or {}
    fields[name] = msg
  end
  if query.actor ~= nil then
    out.actor = validate.id(query.actor)
    if not out.actor then bad("actor", MSG.id) end
  end
  if query.action ~= nil then
    if actions[query.action] then out.action = query.action else bad("action", MSG.action) end
  end
  if query.target ~= nil then
    local kind, id = validate.audit_target(query.target)
    if kind then out.target_type, out.target_id = kind, id else bad("target", id) end
  end
  for _, name in ipairs({"since", "until"}) do
    if query[name] ~= nil then
      local t, msg = validate.timestamp(query[name])
      if t then out[name] = t else bad(name, msg) end
    end
  end
  return result(out, fields)
end

-- For LIKE/ILIKE: the text matched literally, inside %...%.
function validate.contains_pattern(q)
  return "%" .. gsub(q, "[\\%%_]", "\\%0") .. "%"
end

-- ?q=: at most 254 characters of valid UTF-8 without control characters;
-- empty or absent means no filter.
function validate.search(q)
  if q == nil or q == "" then return false end
  local n = utf8_length(q)
  if not n or has_control(q) then return nil, "must be text without control characters" end
  if n > EMAIL_MAX then return nil, MSG.too_long end
  return q
end

return validate
