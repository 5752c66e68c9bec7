-- host.password, the real binding from build/lua/host.so. Outside a host
-- task (as here) hash/verify/verify_dummy run synchronously; the thread-pool
-- path is exercised by the server.
-- Run from the repository root: busted --lua=luajit spec/unit/password_spec.lua
--
-- host.password reads ARGON2_OPSLIMIT, ARGON2_MEMLIMIT_KIB and
-- MOONKEEP_INSECURE_FAST_HASH when it is opened, so a spec that changes them
-- sets the environment (setenv through the FFI) and reopens the module:
-- package.loaded["host.password"] = nil; require "host.password".
-- Most specs use tiny parameters (t=1, m=8 KiB) under
-- MOONKEEP_INSECURE_FAST_HASH=1; one block runs at the defaults.
package.cpath = "build/lua/?.so;" .. package.cpath

local ffi = require "ffi"

ffi.cdef [[
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
struct mk_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk, struct mk_timespec *ts);
]]

local VARS = { "ARGON2_OPSLIMIT", "ARGON2_MEMLIMIT_KIB", "MOONKEEP_INSECURE_FAST_HASH" }
local ORIGINAL = {}
for _, name in ipairs(VARS) do ORIGINAL[name] = os.getenv(name) end

local function open_password(env)
  for _, name in ipairs(VARS) do
    if env[name] == nil then ffi.C.unsetenv(name) else ffi.C.setenv(name, env[name], 1) end
  end
  package.loaded["host.password"] = nil
  return require "host.password"
end

local FAST = { ARGON2_OPSLIMIT = "1", ARGON2_MEMLIMIT_KIB = "8", MOONKEEP_INSECURE_FAST_HASH = "1" }

-- The message a call raises, without the "file:line: " of the caller.
local function error_of(call)
  local ok, err = pcall(call)
  assert.is_false(ok)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

local function now()
  local ts = ffi.new("struct mk_timespec")
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local function seconds(fn)
  local t0 = now()
  fn()
  return now() - t0
end

describe("host.password", function()
  local password

  before_each(function()
    password = open_password(FAST)
  end)

  -- other spec files in the same busted run see the environment they had
  teardown(function()
    open_password(ORIGINAL)
    package.loaded["host.password"] = nil
  end)

  it("runs on LuaJIT", function()
    assert.is_not_nil(jit)
  end)

  describe("hash", function()
    it("gives an argon2id string with the configured parameters", function()
      local hash = password.hash("correct horse battery staple")
      assert.equals("$argon2id$v=19$m=8,t=1,p=1$", hash:sub(1, 27))
    end)

    it("salts: the same password hashes differently each time", function()
      assert.are_not.equal(password.hash("pw"), password.hash("pw"))
    end)

    it("takes any bytes, the empty password and NULs included", function()
      assert.is_true(password.verify(password.hash(""), ""))
      assert.is_true(password.verify(password.hash("a\0b"), "a\0b"))
      assert.is_false(password.verify(password.hash("a\0b"), "a"))
    end)
  end)

  describe("verify", function()
    it("is true for the right password and false for a wrong one", function()
      local hash = password.hash("s3cret!")
      assert.is_true(password.verify(hash, "s3cret!"))
      assert.is_false(password.verify(hash, "s3cret"))
      assert.is_false(password.verify(hash, "S3cret!"))
    end)

    it("is false for a malformed hash", function()
      local hash = password.hash("pw")
      for _, bad in ipairs({ "", "garbage", "$argon2id$", hash:sub(1, -5), hash .. "\0",
                             "$2b$10$abcdefghijklmnopqrstuv", ("$argon2id$"):rep(20) }) do
        assert.is_false(password.verify(bad, "pw"))
      end
    end)

    it("still accepts a hash made with older parameters", function()
      local old = password.hash("pw")
      local newer = open_password({ ARGON2_OPSLIMIT = "2", ARGON2_MEMLIMIT_KIB = "16",
                                    MOONKEEP_INSECURE_FAST_HASH = "1" })
      assert.is_true(newer.verify(old, "pw"))
    end)
  end)

  describe("verify_dummy", function()
    it("returns false whatever the password", function()
      assert.is_false(password.verify_dummy("pw"))
      assert.is_false(password.verify_dummy(""))
    end)
  end)

  describe("needs_rehash", function()
    it("is false for a hash made with the current parameters", function()
      assert.is_false(password.needs_rehash(password.hash("pw")))
    end)

    it("is true once the parameters change (env set, module reopened)", function()
      local hash = password.hash("pw")
      local stronger = open_password({ ARGON2_OPSLIMIT = "3", ARGON2_MEMLIMIT_KIB = "8",
                                       MOONKEEP_INSECURE_FAST_HASH = "1" })
      assert.is_true(stronger.needs_rehash(hash))
      assert.is_false(stronger.needs_rehash(stronger.hash("pw")))
    end)

    it("is true for a malformed hash", function()
      assert.is_true(password.needs_rehash(""))
      assert.is_true(password.needs_rehash("garbage"))
      assert.is_true(password.needs_rehash("$argon2id$v=19$m=8,t=1,p=1$"))
    end)
  end)

  describe("parameters", function()
    it("are refused below t=2, m=19456 KiB without MOONKEEP_INSECURE_FAST_HASH=1", function()
      local msg = "ARGON2_OPSLIMIT=1, ARGON2_MEMLIMIT_KIB=8 is below the minimum (2, 19456); " ..
                  "MOONKEEP_INSECURE_FAST_HASH=1 allows it, for tests only"
      assert.equals(msg, error_of(function()
        open_password({ ARGON2_OPSLIMIT = "1", ARGON2_MEMLIMIT_KIB = "8" })
      end))
      assert.has_error(function()
        open_password({ ARGON2_MEMLIMIT_KIB = "19455" })
      end)
    end)

    it("default to argon2id t=2, m=19456 KiB, p=1 (OWASP)", function()
      local defaults = open_password({})
      local hash = defaults.hash("correct horse battery staple")
      assert.equals("$argon2id$v=19$m=19456,t=2,p=1$", hash:sub(1, 31))
      assert.is_true(defaults.verify(hash, "correct horse battery staple"))
      assert.is_false(defaults.verify(hash, "correct horse battery stapler"))
      assert.is_false(defaults.needs_rehash(hash))
      assert.is_false(defaults.verify_dummy("correct horse battery staple"))
    end)

    it("make verify_dummy cost about what a verify costs", function()
      local defaults = open_password({})
      local hash = defaults.hash("pw")
      defaults.verify_dummy("warm-up") -- the dummy hash is made on first use
      local real = seconds(function() defaults.verify(hash, "wrong") end)
      local dummy = seconds(function() defaults.verify_dummy("wrong") end)
      assert.is_true(dummy > real * 0.5 and dummy < real * 2,
                     ("verify %.1f ms, verify_dummy %.1f ms"):format(real * 1e3, dummy * 1e3))
    end)
  end)

  describe("bad arguments", function()
    it("hash raises for a non-string password", function()
      assert.equals("bad argument #1 to 'hash' (string expected, got nil)",
                    error_of(function() password.hash(nil) end))
    end)

    it("verify raises for a missing password or a non-string hash", function()
      assert.equals("bad argument #2 to 'verify' (string expected, got no value)",
                    error_of(function() password.verify("$argon2id$") end))
      assert.equals("bad argument #1 to 'verify' (string expected, got table)",
                    error_of(function() password.verify({}, "pw") end))
    end)

    it("verify_dummy and needs_rehash raise for a non-string", function()
      assert.equals("bad argument #1 to 'verify_dummy' (string expected, got boolean)",
                    error_of(function() password.verify_dummy(false) end))
      assert.equals("bad argument #1 to 'needs_rehash' (string expected, got nil)",
                    error_of(function() password.needs_rehash(nil) end))
    end)
  end)
end)
