-- host.jwt, the real binding from build/lua/host.so.
-- Run from the repository root: busted --lua=luajit spec/unit/jwt_spec.lua
--
-- host.jwt reads JWT_SECRET and JWT_ISSUER when it is opened, so a spec that
-- changes them sets the environment (setenv through the FFI) and reopens the
-- module: package.loaded["host.jwt"] = nil; require "host.jwt".
-- Hostile tokens are crafted here by hand: header and payload through
-- cjson and crypto.b64url_encode, HMAC-SHA-256 through crypto.hmac_sha256,
-- HMAC-SHA-512 through the openssl command.
package.cpath = "build/lua/?.so;" .. package.cpath

local ffi = require "ffi"
local cjson = require "cjson"
local crypto = require "host.crypto"

ffi.cdef [[
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
int poll(void *fds, unsigned long nfds, int timeout);
]]

local SECRET = "test-secret-0123456789-abcdefghijklmnop" -- 39 bytes
local ORIGINAL_SECRET, ORIGINAL_ISSUER = os.getenv("JWT_SECRET"), os.getenv("JWT_ISSUER")

local function setenv(name, value)
  if value == nil then ffi.C.unsetenv(name) else ffi.C.setenv(name, value, 1) end
end

local function open_jwt(secret, issuer)
  setenv("JWT_SECRET", secret)
  setenv("JWT_ISSUER", issuer)
  package.loaded["host.jwt"] = nil
  return require "host.jwt"
end

-- The message a call raises, without the "file:line: " of the caller.
local function error_of(call)
  local ok, err = pcall(call)
  assert.is_false(ok)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

local function unhex(hex)
  return (hex:gsub("..", function(byte) return string.char(tonumber(byte, 16)) end))
end

local function b64json(t)
  return crypto.b64url_encode(cjson.encode(t))
end

local function hs256(signing_input, key)
  return crypto.b64url_encode(unhex(crypto.hmac_sha256(key or SECRET, signing_input)))
end

local function have_openssl()
  local p = io.popen("command -v openssl")
  local out = p:read("*a")
  p:close()
  return out ~= ""
end

local function hs512(signing_input, key)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(signing_input)
  f:close()
  local p = io.popen("openssl dgst -sha512 -binary -hmac '" .. (key or SECRET) .. "' < " .. path)
  local mac = p:read("*a")
  p:close()
  os.remove(path)
  assert.equals(64, #mac)
  return crypto.b64url_encode(mac)
end

-- A token with this header and payload, signed by `sign` (default HS256
-- with SECRET).
local function craft(header, payload, sign)
  local input = b64json(header) .. "." .. b64json(payload)
  return input .. "." .. (sign or hs256)(input)
end

local function claims(overrides)
  local now = os.time()
  local c = { sub = 7, typ = "access", iss = "moonkeep", iat = now, exp = now + 300 }
  for k, v in pairs(overrides or {}) do c[k] = v end
  return c
end

local HS256 = { alg = "HS256", typ = "JWT" }

describe("host.jwt", function()
  local jwt

  before_each(function()
    jwt = open_jwt(SECRET, nil)
  end)

  -- the error verify gives for a token it refuses
  local function refused(token, typ)
    local c, err = jwt.verify(token, typ)
    assert.is_nil(c)
    return err
  end

  -- other spec files in the same busted run see the environment they had
  teardown(function()
    setenv("JWT_SECRET", ORIGINAL_SECRET)
    setenv("JWT_ISSUER", ORIGINAL_ISSUER)
    package.loaded["host.jwt"] = nil
  end)

  it("runs on LuaJIT", function()
    assert.is_not_nil(jit)
  end)

  describe("sign and verify", function()
    it("round-trips the claims, with iat, exp and iss set by the host", function()
      local before = os.time()
      local token = jwt.sign({ sub = 42, typ = "access", sid = "s-1", admin = true }, 900)
      local c, err = jwt.verify(token, "access")
      assert.is_nil(err)
      assert.equals(42, c.sub)
      assert.equals("number", type(c.sub))
      assert.equals("access", c.typ)
      assert.equals("s-1", c.sid)
      assert.is_true(c.admin)
      assert.equals("moonkeep", c.iss)
      assert.is_true(c.iat >= before and c.iat <= os.time())
      assert.equals(c.iat + 900, c.exp)
    end)

    it("writes integral numbers as JSON integers and keeps fractions", function()
      local token = jwt.sign({ n = 1234567890123, half = 0.5, neg = -3 }, 60)
      local payload = crypto.b64url_decode(token:match("^[^.]+%.([^.]+)%."))
      assert.truthy(payload:find('"n":1234567890123', 1, true))
      assert.truthy(payload:find('"neg":-3', 1, true))
      local c = jwt.verify(token)
      assert.equals(1234567890123, c.n)
      assert.equals(0.5, c.half)
    end)

    it("signs with HS256 and a JWT header", function()
      local token = jwt.sign({}, 60)
      local header = cjson.decode(crypto.b64url_decode(token:match("^[^.]+")))
      assert.equals("HS256", header.alg)
    end)

    it("overrides iss, iat and exp given in the claims", function()
      local c = jwt.verify(jwt.sign({ iss = "evil", iat = 1, exp = 2 }, 60))
      assert.equals("moonkeep", c.iss)
      assert.is_true(c.exp > os.time())
    end)

    it("uses JWT_ISSUER when set, and refuses tokens of another issuer", function()
      local other = open_jwt(SECRET, "other-service")
      local token = other.sign({}, 60)
      assert.equals("other-service", other.verify(token).iss)
      assert.same({ nil, "invalid" }, { jwt.verify(token) })
    end)

    it("accepts a hand-made HS256 token with a kid header", function()
      local token = craft({ alg = "HS256", typ = "JWT", kid = "k1" }, claims())
      assert.equals(7, jwt.verify(token, "access").sub)
    end)

    it("accepts nbf and iat up to 60 seconds in the future (clock skew)", function()
      local now = os.time()
      local token = craft(HS256, claims({ nbf = now + 50, iat = now + 50 }))
      assert.is_table(jwt.verify(token))
    end)
  end)

  describe("verify refuses", function()
    it("an alg none token, unsigned or signed", function()
      local input = b64json({ alg = "none", typ = "JWT" }) .. "." .. b64json(claims())
      assert.equals("invalid", refused(input .. "."))
      assert.equals("invalid", refused(input .. "." .. hs256(input)))
    end)

    it("an HS512 token signed with the right key", function()
      if not have_openssl() then return pending("needs the openssl command") end
      local token = craft({ alg = "HS512", typ = "JWT" }, claims(), hs512)
      assert.equals("invalid", refused(token))
    end)

    it("an RS256 header, even over an HMAC-SHA-256 signature with the right key", function()
      local token = craft({ alg = "RS256", typ = "JWT" }, claims())
      assert.equals("invalid", refused(token))
    end)

    it("a header with crit", function()
      local token = craft({ alg = "HS256", typ = "JWT", crit = { "exp" } }, claims())
      assert.equals("invalid", refused(token))
    end)

    it("a bad signature", function()
      local token = jwt.sign({ typ = "access" }, 60)
      local last = token:sub(-2, -2)
      local flipped = token:sub(1, -3) .. (last == "A" and "B" or "A") .. token:sub(-1)
      assert.equals("invalid", refused(flipped))
      assert.equals("invalid", refused(craft(HS256, claims(), function(input)
        return hs256(input, SECRET .. "x")
      end)))
    end)

    it("a token signed with another key", function()
      local other = open_jwt(SECRET:reverse(), nil)
      assert.equals("invalid", refused(other.sign({}, 60)))
    end)

    it("an expired token with 'expired'", function()
      local now = os.time()
      assert.equals("expired", refused(craft(HS256, claims({ iat = now - 100, exp = now - 1 }))))
      assert.equals("expired", refused(craft(HS256, claims({ exp = now }))))
    end)

    it("an expired token with a bad signature as 'invalid'", function()
      local now = os.time()
      local token = craft(HS256, claims({ exp = now - 1 }), function(input)
        return hs256(input, "x" .. SECRET)
      end)
      assert.equals("invalid", refused(token))
    end)

    it("a token whose nbf is more than 60 seconds ahead", function()
      assert.equals("invalid", refused(craft(HS256, claims({ nbf = os.time() + 120 }))))
      assert.equals("invalid", refused(craft(HS256, claims({ nbf = "soon" }))))
    end)

    it("a token whose iat is more than 60 seconds ahead, or missing", function()
      assert.equals("invalid", refused(craft(HS256, claims({ iat = os.time() + 120 }))))
      local c = claims()
      c.iat = nil
      assert.equals("invalid", refused(craft(HS256, c)))
    end)

    it("a token from another issuer, or without iss", function()
      assert.equals("invalid", refused(craft(HS256, claims({ iss = "someone-else" }))))
      local c = claims()
      c.iss = nil
      assert.equals("invalid", refused(craft(HS256, c)))
    end)

    it("an access token where a refresh token is expected, and the other way round", function()
      local access = jwt.sign({ typ = "access" }, 60)
      local refresh = jwt.sign({ typ = "refresh" }, 60)
      assert.equals("invalid", refused(access, "refresh"))
      assert.equals("invalid", refused(refresh, "access"))
      assert.equals("invalid", refused(jwt.sign({}, 60), "access"))
      assert.is_table(jwt.verify(refresh, "refresh"))
    end)

    it("a token without exp, or with a non-numeric exp", function()
      local c = claims()
      c.exp = nil
      assert.equals("invalid", refused(craft(HS256, c)))
      assert.equals("invalid", refused(craft(HS256, claims({ exp = tostring(os.time() + 300) }))))
    end)

    it("two segments, four segments and empty segments", function()
      local token = jwt.sign({}, 60)
      local head, body, sig = token:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      assert.equals("invalid", refused(head .. "." .. body))
      assert.equals("invalid", refused(token .. "." .. sig))
      assert.equals("invalid", refused(head .. ".." .. sig))
      assert.equals("invalid", refused(head .. "." .. body .. "."))
      assert.equals("invalid", refused("." .. body .. "." .. sig))
      assert.equals("invalid", refused(""))
    end)

    it("garbage base64: stray bytes, padding, standard alphabet", function()
      local token = jwt.sign({}, 60)
      assert.equals("invalid", refused("!!!." .. token:match("%.(.*)$")))
      assert.equals("invalid", refused(token .. "="))
      assert.equals("invalid", refused(token:gsub("%-", "+"):gsub("_", "/") .. "+/"))
      assert.equals("invalid", refused(token .. " "))
      assert.equals("invalid", refused(token .. "\0"))
      assert.equals("invalid", refused("abc.def.ghi"))
    end)

    it("a validly signed payload that is not a JSON object", function()
      local input = b64json(HS256) .. "." .. crypto.b64url_encode("not json")
      assert.equals("invalid", refused(input .. "." .. hs256(input)))
      input = b64json(HS256) .. "." .. crypto.b64url_encode("[1,2]")
      assert.equals("invalid", refused(input .. "." .. hs256(input)))
    end)

    it("a 100 KB token, before parsing it", function()
      local token = craft(HS256, claims({ pad = ("x"):rep(100 * 1024) }))
      assert.is_true(#token > 100 * 1024)
      assert.equals("invalid", refused(token))
      assert.equals("invalid", refused(("a"):rep(100 * 1024)))
    end)
  end)

  -- verify remembers the tokens it verified (host/bind/jwt.c): what follows holds
  -- on the second sight of a token as on the first
  describe("a token verified before", function()
    it("gives the same claims in a table of its own each time", function()
      local token = jwt.sign({ sub = 7, sid = "s-9", typ = "access" }, 900)
      local first = assert(jwt.verify(token, "access"))
      first.sub = "changed by a script"
      local second = assert(jwt.verify(token, "access"))
      assert.are_not.equal(first, second)
      assert.equals(7, second.sub)
      assert.equals("s-9", second.sid)
    end)

    it("is checked again for the typ asked for", function()
      local token = jwt.sign({ sub = 7, typ = "access" }, 900)
      assert.is_table(jwt.verify(token, "access"))
      assert.equals("invalid", refused(token, "refresh"))
      assert.is_table(jwt.verify(token))
    end)

    it("expires", function()
      -- a token that verifies now and expires in a second or two (made
      -- again if the clock ticked past it before the first verify)
      local exp, token
      for _ = 1, 5 do
        exp = os.time() + 2
        token = craft(HS256, claims({ iat = exp - 10, exp = exp }))
        if jwt.verify(token, "access") then break end
        token = nil
      end
      assert.is_string(token, "no token verified before it expired")
      while os.time() <= exp do ffi.C.poll(nil, 0, 50) end
      assert.equals("expired", refused(token, "access"))
    end)

    it("does not vouch for a token that differs in any byte", function()
      local token = jwt.sign({ sub = 7, typ = "access" }, 900)
      assert.is_table(jwt.verify(token, "access"))
      local last = token:sub(-1)
      local tampered = token:sub(1, -2) .. (last == "A" and "B" or "A")
      assert.equals("invalid", refused(tampered, "access"))
    end)

    it("is not shared with a module opened with another key", function()
      local token = jwt.sign({ sub = 7, typ = "access" }, 900)
      assert.is_table(jwt.verify(token, "access"))
      local other = open_jwt(SECRET:reverse(), nil)
      local claims_other, err = other.verify(token, "access")
      assert.is_nil(claims_other)
      assert.equals("invalid", err)
    end)

    it("keeps verifying after more tokens than it remembers", function()
      local tokens = {}
      for i = 1, 1500 do tokens[i] = jwt.sign({ sub = i, typ = "access" }, 900) end
      for round = 1, 2 do
        for i = 1, 1500 do
          local c = jwt.verify(tokens[i], "access")
          assert(c and c.sub == i, ("token %d, round %d"):format(i, round))
        end
      end
    end)
  end)

  describe("configuration", function()
    local MESSAGE = "JWT_SECRET is not set or shorter than 32 bytes"

    it("raises from sign and verify when JWT_SECRET is shorter than 32 bytes", function()
      local short = open_jwt(("k"):rep(31), nil)
      assert.equals(MESSAGE, error_of(function() short.sign({}, 60) end))
      assert.equals(MESSAGE, error_of(function() short.verify("a.b.c") end))
    end)

    it("raises when JWT_SECRET is not set", function()
      local unset = open_jwt(nil, nil)
      assert.equals(MESSAGE, error_of(function() unset.sign({}, 60) end))
    end)

    it("accepts a key of exactly 32 bytes", function()
      local exact = open_jwt(("k"):rep(32), nil)
      assert.is_table(exact.verify(exact.sign({}, 60)))
    end)

    it("keeps the key of the moment it was opened", function()
      local token = jwt.sign({}, 60)
      setenv("JWT_SECRET", SECRET:reverse())
      assert.is_table(jwt.verify(token))
    end)
  end)

  describe("bad arguments", function()
    it("sign raises for claims that are not a table", function()
      assert.equals("bad argument #1 to 'sign' (table expected, got string)",
                    error_of(function() jwt.sign("sub", 60) end))
    end)

    it("sign raises for nested tables, functions and non-string names", function()
      assert.equals("bad argument #1 to 'sign' (claim 'roles' is a table; claims must be strings, numbers or booleans)",
                    error_of(function() jwt.sign({ roles = { "a" } }, 60) end))
      assert.equals("bad argument #1 to 'sign' (claim 'f' is a function; claims must be strings, numbers or booleans)",
                    error_of(function() jwt.sign({ f = print }, 60) end))
      assert.equals("bad argument #1 to 'sign' (claim names must be strings)",
                    error_of(function() jwt.sign({ "positional" }, 60) end))
      assert.equals("bad argument #1 to 'sign' (claim 'n' is not a finite number)",
                    error_of(function() jwt.sign({ n = math.huge }, 60) end))
    end)

    it("sign raises for a string claim that is not UTF-8", function()
      assert.equals("jwt.sign: claim 'name' cannot be encoded (not UTF-8?)",
                    error_of(function() jwt.sign({ name = "caf\233" }, 60) end))
    end)

    it("sign raises for a ttl that is missing, not whole or out of range", function()
      local msg = "bad argument #2 to 'sign' (ttl must be a whole number of seconds in 1..315360000)"
      assert.equals(msg, error_of(function() jwt.sign({}, 0) end))
      assert.equals(msg, error_of(function() jwt.sign({}, 1.5) end))
      assert.equals(msg, error_of(function() jwt.sign({}, -60) end))
      assert.equals("bad argument #2 to 'sign' (number expected, got no value)",
                    error_of(function() jwt.sign({}) end))
    end)

    it("verify raises for a token or typ that is not a string", function()
      assert.equals("bad argument #1 to 'verify' (string expected, got nil)",
                    error_of(function() jwt.verify(nil, "access") end))
      assert.equals("bad argument #2 to 'verify' (string expected, got table)",
                    error_of(function() jwt.verify("a.b.c", {}) end))
    end)
  end)
end)
