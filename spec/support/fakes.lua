-- spec/support/fakes.lua — stand-ins for the host bindings, with the same
-- contracts (scripts cannot tell), plus what specs need to look inside:
--
--   fakes.jwt(clock)      sign/verify; tokens expire on the kit's clock
--   fakes.password()      hash "$fake$v2$<pw>", verify, verify_dummy (counted),
--                         needs_rehash (true for "$fake$v1$" hashes); .busy
--                         = true makes them answer nil, "busy"
--   fakes.crypto()        pure-Lua SHA-256, HMAC, base64url, random tokens
--   fakes.mail()          deliver: .sent (every message delivered), :fail(err,
--                         permanent) to refuse attempts
--   fakes.log()           .lines ({level, msg, fields}), :text() to grep
--   fakes.info(status)    {version, commit, generation, digest, pid, scripts_status}
--   fakes.metrics()       route(pattern) recorded in .routes; count/gauge in
--                         .values; render() returns .text, or nil when
--                         .separate_port is set
--
-- A binding that raises on misuse in C raises here too (wrong argument types).
local bit = require "bit"
local cjson = require "cjson.safe"

local band, bor, bxor, bnot, rshift, lshift, ror, tobit =
  bit.band, bit.bor, bit.bxor, bit.bnot, bit.rshift, bit.lshift, bit.ror, bit.tobit
local byte, char, rep, sub, format, find, gsub = string.byte, string.char, string.rep, string.sub,
  string.format, string.find, string.gsub
local concat, floor, random = table.concat, math.floor, math.random
local type, pairs, ipairs, error, tostring = type, pairs, ipairs, error, tostring

local fakes = {}

local function check_type(fname, n, v, want)
  if type(v) ~= want then
    error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, want, type(v)), 3)
  end
end

-- ---- crypto -------------------------------------------------------------------

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- SHA-256 of a string, as 32 raw bytes (FIPS 180-4; LuaJIT's bit ops).
local function sha256_raw(msg)
  local H = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}
  for i = 1, 8 do H[i] = tobit(H[i]) end
  local bits = #msg * 8
  local len_bytes = {}
  for i = 8, 1, -1 do
    len_bytes[i] = char(bits % 256)
    bits = floor(bits / 256)
  end
  msg = msg .. "\128" .. rep("\0", (55 - #msg) % 64) .. concat(len_bytes)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      local a, b, c, d = byte(msg, chunk + i * 4, chunk + i * 4 + 3)
      w[i] = bor(lshift(a, 24), lshift(b, 16), lshift(c, 8), d)
    end
    for i = 16, 63 do
      local s0 = bxor(ror(w[i - 15], 7), ror(w[i - 15], 18), rshift(w[i - 15], 3))
      local s1 = bxor(ror(w[i - 2], 17), ror(w[i - 2], 19), rshift(w[i - 2], 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = H[1], H[2], H[3], H[4], H[5], H[6], H[7], H[8]
    for i = 0, 63 do
      local S1 = bxor(ror(e, 6), ror(e, 11), ror(e, 25))
      local ch = bxor(band(e, f), band(bnot(e), g))
      local t1 = tobit(h + S1 + ch + K[i + 1] + w[i])
      local S0 = bxor(ror(a, 2), ror(a, 13), ror(a, 22))
      local maj = bxor(band(a, b), band(a, c), band(b, c))
      local t2 = tobit(S0 + maj)
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    H[1], H[2], H[3], H[4] = tobit(H[1] + a), tobit(H[2] + b), tobit(H[3] + c), tobit(H[4] + d)
    H[5], H[6], H[7], H[8] = tobit(H[5] + e), tobit(H[6] + f), tobit(H[7] + g), tobit(H[8] + h)
  end
  local out = {}
  for i = 1, 8 do
    local x = H[i]
    out[i] = char(band(rshift(x, 24), 255), band(rshift(x, 16), 255), band(rshift(x, 8), 255), band(x, 255))
  end
  return concat(out)
end

local function to_hex(raw)
  return (gsub(raw, ".", function(c) return format("%02x", byte(c)) end))
end

local function hmac_raw(key, msg)
  if #key > 64 then key = sha256_raw(key) end
  key = key .. rep("\0", 64 - #key)
  local ipad, opad = {}, {}
  for i = 1, 64 do
    local k = byte(key, i)
    ipad[i] = char(bxor(k, 0x36))
    opad[i] = char(bxor(k, 0x5c))
  end
  return sha256_raw(concat(opad) .. sha256_raw(concat(ipad) .. msg))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[byte(B64, i)] = i - 1 end

local function b64url_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for j = 1, chars do
      local shift = 18 - (j - 1) * 6
      local idx = floor(n / 2 ^ shift) % 64
      out[#out + 1] = sub(B64, idx + 1, idx + 1)
    end
  end
  return concat(out)
end

local function b64url_decode(s)
  if #s % 4 == 1 then return nil, "invalid base64url" end
  local out, n, bits = {}, 0, 0
  for i = 1, #s do
    local v = B64_INDEX[byte(s, i)]
    if not v then return nil, "invalid base64url" end
    n, bits = n * 64 + v, bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = char(floor(n / 2 ^ bits) % 256)
      n = n % 2 ^ bits
    end
  end
  return concat(out)
end

function fakes.crypto()
  local crypto = {}
  function crypto.random_token(n)
    n = n or 32
    if type(n) ~= "number" or n < 16 or n > 1024 or n ~= floor(n) then
      error("bad argument #1 to 'random_token' (must be a whole number of bytes in 16..1024)", 2)
    end
    local bytes = {}
    for i = 1, n do bytes[i] = char(random(0, 255)) end
    return b64url_encode(concat(bytes))
  end
  function crypto.sha256(s) check_type("sha256", 1, s, "string"); return to_hex(sha256_raw(s)) end
  function crypto.hmac_sha256(key, msg)
    check_type("hmac_sha256", 1, key, "string")
    check_type("hmac_sha256", 2, msg, "string")
    return to_hex(hmac_raw(key, msg))
  end
  function crypto.equal(a, b)
    check_type("equal", 1, a, "string")
    check_type("equal", 2, b, "string")
    return a == b
  end
  function crypto.b64url_encode(s) check_type("b64url_encode", 1, s, "string"); return b64url_encode(s) end
  function crypto.b64url_decode(s) check_type("b64url_decode", 1, s, "string"); return b64url_decode(s) end
  return crypto
end

-- ---- jwt -----------------------------------------------------------------------

-- Tokens look like JWTs (three base64url parts) but the "signature" is an
-- HMAC with a spec key; verify checks it, iss, typ and exp on the kit's clock.
function fakes.jwt(clock)
  local KEY, ISS = "fake-jwt-key", "moonkeep"
  local jwt = {issued = {}}
  local function encode(claims)
    local header = b64url_encode('{"alg":"HS256","typ":"JWT"}')
    local payload = b64url_encode(assert(require("host.json").encode(claims)))
    local sig = b64url_encode(hmac_raw(KEY, header .. "." .. payload))
    return header .. "." .. payload .. "." .. sig
  end
  jwt.encode = encode -- for specs that forge tokens (alg none, other key...)
  function jwt.sign(claims, ttl)
    check_type("sign", 1, claims, "table")
    if type(ttl) ~= "number" or ttl < 1 or ttl ~= floor(ttl) then
      error("bad argument #2 to 'sign' (ttl must be a whole number of seconds in 1..315360000)", 2)
    end
    local c = {}
    for k, v in pairs(claims) do
      local t = type(v)
      if type(k) ~= "string" or not (t == "string" or t == "number" or t == "boolean") then
        error("bad argument #1 to 'sign' (claims must map names to strings, numbers or booleans)", 2)
      end
      c[k] = v
    end
    c.iat, c.exp, c.iss = clock.now, clock.now + ttl, ISS
    local token = encode(c)
    jwt.issued[#jwt.issued + 1] = c
    return token
  end
  function jwt.verify(token, typ)
    check_type("verify", 1, token, "string")
    local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
    if not h then return nil, "invalid" end
    if b64url_encode(hmac_raw(KEY, h .. "." .. p)) ~= s then return nil, "invalid" end
    local header = cjson.decode(b64url_decode(h) or "")
    if type(header) ~= "table" or header.alg ~= "HS256" then return nil, "invalid" end
    local claims = cjson.decode(b64url_decode(p) or "")
    if type(claims) ~= "table" or claims.iss ~= ISS or type(claims.exp) ~= "number" then return nil, "invalid" end
    if typ ~= nil and claims.typ ~= typ then return nil, "invalid" end
    if claims.exp <= clock.now then return nil, "expired" end
    return claims
  end
  return jwt
end

-- ---- password --------------------------------------------------------------------

function fakes.password()
  local CURRENT, OLD = "$fake$v2$", "$fake$v1$"
  -- busy = true: every hashing call answers nil, "busy" (a full queue).
  local password = {hashed = 0, verified = 0, dummies = 0, busy = false}
  function password.hash(pw)
    check_type("hash", 1, pw, "string")
    if password.busy then return nil, "busy" end
    password.hashed = password.hashed + 1
    return CURRENT .. pw
  end
  function password.verify(hash, pw)
    check_type("verify", 1, hash, "string")
    check_type("verify", 2, pw, "string")
    if password.busy then return nil, "busy" end
    password.verified = password.verified + 1
    return hash == CURRENT .. pw or hash == OLD .. pw
  end
  function password.verify_dummy(pw)
    check_type("verify_dummy", 1, pw, "string")
    if password.busy then return nil, "busy" end
    password.dummies = password.dummies + 1
    return false
  end
  function password.needs_rehash(hash)
    check_type("needs_rehash", 1, hash, "string")
    return sub(hash, 1, #CURRENT) ~= CURRENT
  end
  -- What a stored hash looks like (old = made with older parameters).
  function password.stored(pw, old) return (old and OLD or CURRENT) .. pw end
  return password
end

-- ---- mail, log, info -----------------------------------------------------------------

function fakes.mail()
  local mail = {sent = {}, refusing = nil, permanent = false}
  function mail.deliver(msg)
    check_type("deliver", 1, msg, "table")
    for _, k in ipairs({"id", "to", "subject", "text"}) do
      if type(msg[k]) ~= "string" then error("bad argument #1 to 'deliver' (" .. k .. " must be a string)", 2) end
    end
    if mail.refusing then return nil, mail.refusing, mail.permanent end
    mail.sent[#mail.sent + 1] = msg
    return true
  end
  function mail.fail(err, permanent)
    mail.refusing, mail.permanent = err or "smtp: connection refused", permanent or false
  end
  function mail.stats() return {sending = 0, sent = #mail.sent, failed = 0} end
  return mail
end

function fakes.log()
  local log = {lines = {}}
  local function writer(level)
    return function(msg, fields)
      log.lines[#log.lines + 1] = {level = level, msg = msg, fields = fields or {}}
    end
  end
  log.info, log.warn, log.error, log.debug = writer("info"), writer("warn"), writer("error"), writer("debug")
  -- Every line as text, to search for what must not be there.
  function log.text()
    local out = {}
    for _, line in ipairs(log.lines) do
      local parts = {line.level, line.msg}
      for k, v in pairs(line.fields) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
      out[#out + 1] = concat(parts, " ")
    end
    return concat(out, "\n")
  end
  function log.find(msg)
    for _, line in ipairs(log.lines) do
      if find(line.msg, msg, 1, true) then return line end
    end
  end
  return log
end

-- `status` is what scripts_status() returns: the JSON text the master
-- writes (host/server/snapshot.c), or nil.
function fakes.info(status)
  return {version = "0.0.0-spec", commit = "spec", generation = 1, digest = "spec", pid = 0,
          scripts_status = function() return status end}
end

function fakes.metrics()
  local metrics = {routes = {}, separate_port = false, CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8",
                   text = "# TYPE moonkeep_http_requests_in_flight gauge\nmoonkeep_http_requests_in_flight 1\n"}
  function metrics.route(pattern)
    check_type("route", 1, pattern, "string")
    metrics.routes[#metrics.routes + 1] = pattern
  end
  -- count/gauge: the last value of each key in .values (counters summed)
  metrics.values = {}
  function metrics.count(key, n, help)
    check_type("count", 1, key, "string")
    check_type("count", 2, n, "number")
    check_type("count", 3, help, "string")
    metrics.values[key] = (metrics.values[key] or 0) + n
  end
  function metrics.gauge(key, v, help)
    check_type("gauge", 1, key, "string")
    check_type("gauge", 2, v, "number")
    check_type("gauge", 3, help, "string")
    metrics.values[key] = v
  end
  function metrics.render()
    if metrics.separate_port then return nil, "served on METRICS_PORT" end
    return metrics.text
  end
  return metrics
end

fakes.sha256_hex = function(s) return to_hex(sha256_raw(s)) end

return fakes
