-- host.crypto, the real binding from build/lua/host.so.
-- Run from the repository root: busted --lua=luajit spec/unit/crypto_spec.lua
package.cpath = "build/lua/?.so;" .. package.cpath

local crypto = require "host.crypto"

-- The message a call raises, without the "file:line: " of the caller.
-- `call` is a closure so the message names the function the way a script
-- sees it ("... to 'sha256' ..."); not a tail call, which would lose that.
local function error_of(call)
  local ok, err = pcall(call)
  assert.is_false(ok)
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("host.crypto", function()
  it("runs on LuaJIT", function()
    assert.is_not_nil(jit)
  end)

  describe("random_token", function()
    it("gives 32 random bytes as 43 base64url characters by default", function()
      local token = crypto.random_token()
      assert.equals(43, #token)
      assert.truthy(token:match("^[A-Za-z0-9_-]+$"))
      assert.equals(32, #crypto.b64url_decode(token))
    end)

    it("gives the number of bytes asked for, from 16 to 1024", function()
      assert.equals(16, #crypto.b64url_decode(crypto.random_token(16)))
      assert.equals(22, #crypto.random_token(16))
      assert.equals(1024, #crypto.b64url_decode(crypto.random_token(1024)))
    end)

    it("never gives the same token twice in ten thousand draws", function()
      local seen = {}
      for _ = 1, 10000 do
        local token = crypto.random_token(16)
        assert.is_nil(seen[token])
        seen[token] = true
      end
    end)

    it("raises for sizes outside 16..1024 or not whole", function()
      local msg = "bad argument #1 to 'random_token' (must be a whole number of bytes in 16..1024)"
      assert.equals(msg, error_of(function() crypto.random_token(15) end))
      assert.equals(msg, error_of(function() crypto.random_token(1025) end))
      assert.equals(msg, error_of(function() crypto.random_token(16.5) end))
      assert.equals(msg, error_of(function() crypto.random_token(0 / 0) end))
      assert.equals("bad argument #1 to 'random_token' (number expected, got table)",
                    error_of(function() crypto.random_token({}) end))
    end)
  end)

  describe("sha256", function()
    it("matches the FIPS 180-2 vector for 'abc'", function()
      assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                    crypto.sha256("abc"))
    end)

    it("hashes the empty string and binary input", function()
      assert.equals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    crypto.sha256(""))
      assert.equals(64, #crypto.sha256("\0\1\2\255"))
    end)

    it("raises for a non-string", function()
      assert.equals("bad argument #1 to 'sha256' (string expected, got no value)",
                    error_of(function() crypto.sha256() end))
    end)
  end)

  describe("hmac_sha256", function()
    it("matches RFC 4231 test case 2 (a key shorter than the block)", function()
      assert.equals("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                    crypto.hmac_sha256("Jefe", "what do ya want for nothing?"))
    end)

    it("matches RFC 4231 test case 6 (a key longer than the block)", function()
      assert.equals("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                    crypto.hmac_sha256(("\170"):rep(131),
                                       "Test Using Larger Than Block-Size Key - Hash Key First"))
    end)

    it("raises when the message is missing", function()
      assert.equals("bad argument #2 to 'hmac_sha256' (string expected, got no value)",
                    error_of(function() crypto.hmac_sha256("key") end))
    end)
  end)

  describe("equal", function()
    it("is true for equal strings, the empty string included", function()
      assert.is_true(crypto.equal("secret-token", "secret-token"))
      assert.is_true(crypto.equal("", ""))
      assert.is_true(crypto.equal("a\0b", "a\0b"))
    end)

    it("is false when one byte differs", function()
      assert.is_false(crypto.equal("secret-token", "secret-tokeN"))
      assert.is_false(crypto.equal("a\0b", "a\0c"))
    end)

    it("is false for different lengths", function()
      assert.is_false(crypto.equal("secret", "secret-token"))
      assert.is_false(crypto.equal("", "x"))
    end)

    it("raises for a non-string", function()
      assert.equals("bad argument #2 to 'equal' (string expected, got nil)",
                    error_of(function() crypto.equal("a", nil) end))
    end)
  end)

  describe("b64url_encode and b64url_decode", function()
    it("round-trip every byte value and every length up to 64", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.equals(all, crypto.b64url_decode(crypto.b64url_encode(all)))
      for n = 0, 64 do
        local s = all:sub(1, n)
        assert.equals(s, crypto.b64url_decode(crypto.b64url_encode(s)))
      end
    end)

    it("encode with - and _ and without padding", function()
      assert.equals("-_8", crypto.b64url_encode("\251\255"))
      assert.equals("YQ", crypto.b64url_encode("a"))
      assert.equals("", crypto.b64url_encode(""))
    end)

    it("decode rejects the standard alphabet, padding, whitespace and stray bytes", function()
      for _, bad in ipairs({ "+_8", "/_8", "YQ==", "YQ=", "Y Q", "YQ\n", "YQ\0", "Y*", "é" }) do
        local value, err = crypto.b64url_decode(bad)
        assert.is_nil(value)
        assert.equals("invalid base64url", err)
      end
    end)

    it("decode rejects impossible lengths and non-canonical trailing bits", function()
      assert.is_nil(crypto.b64url_decode("A"))
      assert.is_nil(crypto.b64url_decode("YR"))   -- "YQ" is the only spelling of "a"
      assert.is_nil(crypto.b64url_decode("YWJ"))  -- nor is this of "ab" ("YWI")
    end)

    it("raise for a non-string", function()
      assert.equals("bad argument #1 to 'b64url_encode' (string expected, got table)",
                    error_of(function() crypto.b64url_encode({}) end))
      assert.equals("bad argument #1 to 'b64url_decode' (string expected, got boolean)",
                    error_of(function() crypto.b64url_decode(true) end))
    end)
  end)
end)
