-- spec/support/fakes.lua keeps the contracts of the real bindings: checked
-- against known answers, and against build/lua/host.so where it has them.
local fakes = require "support.fakes"

local function real(name)
  package.loaded[name] = nil
  local ok, mod = pcall(require, name)
  return ok and mod or nil
end

describe("the fake host.crypto", function()
  local crypto = fakes.crypto()

  it("computes SHA-256 (FIPS 180-4 examples)", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", crypto.sha256(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", crypto.sha256("abc"))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
                 crypto.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
  end)

  it("computes HMAC-SHA-256 (RFC 4231 cases 1 and 6)", function()
    assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                 crypto.hmac_sha256(string.rep("\11", 20), "Hi There"))
    assert.equal("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                 crypto.hmac_sha256(string.rep("\170", 131), "Test Using Larger Than Block-Size Key - Hash Key First"))
  end)

  it("round-trips base64url without padding", function()
    for _, s in ipairs({"", "f", "fo", "foo", "foob", "fooba", "foobar", "\255\254\253"}) do
      assert.equal(s, crypto.b64url_decode(crypto.b64url_encode(s)))
    end
    assert.equal("Zm9vYmFy", crypto.b64url_encode("foobar"))
    assert.equal("__79", crypto.b64url_encode("\255\254\253"))
    assert.same({nil, "invalid base64url"}, {crypto.b64url_decode("a=")})
  end)

  it("makes random tokens of the asked size and refuses sizes under 16", function()
    assert.equal(43, #crypto.random_token())
    assert.equal(22, #crypto.random_token(16))
    assert.has_error(function() crypto.random_token(8) end)
  end)

  local host_crypto = real("host.crypto")
  local agree = host_crypto and it or pending
  agree("agrees with the real host.crypto", function()
    for _, s in ipairs({"", "abc", string.rep("x", 1000), "\0\1\2"}) do
      assert.equal(host_crypto.sha256(s), crypto.sha256(s))
      assert.equal(host_crypto.hmac_sha256("key", s), crypto.hmac_sha256("key", s))
      assert.equal(host_crypto.b64url_encode(s), crypto.b64url_encode(s))
    end
  end)
end)

describe("the fake host.jwt", function()
  local clock = {now = 1000}
  local jwt

  before_each(function()
    package.cpath = "build/lua/?.so;" .. package.cpath
    jwt = fakes.jwt(clock)
  end)

  it("signs claims that verify, with iat, exp and iss added", function()
    local claims = jwt.verify(jwt.sign({sub = "1", typ = "access"}, 60), "access")
    assert.same({sub = "1", typ = "access", iat = 1000, exp = 1060, iss = "moonkeep"}, claims)
  end)

  it("answers expired once exp has passed, and invalid for another typ", function()
    local token = jwt.sign({typ = "refresh"}, 60)
    assert.same({nil, "invalid"}, {jwt.verify(token, "access")})
    clock.now = 1060
    assert.same({nil, "expired"}, {jwt.verify(token, "refresh")})
  end)

  it("refuses alg none and a changed payload", function()
    local token = jwt.sign({sub = "1"}, 60)
    local h, p, s = token:match("^(.-)%.(.-)%.(.*)$")
    local crypto = fakes.crypto()
    local none = crypto.b64url_encode('{"alg":"none"}') .. "." .. p .. "." .. s
    assert.same({nil, "invalid"}, {jwt.verify(none)})
    local changed = h .. "." .. crypto.b64url_encode('{"sub":"2","exp":9999,"iss":"moonkeep"}') .. "." .. s
    assert.same({nil, "invalid"}, {jwt.verify(changed)})
  end)

  it("raises on misuse like the real one", function()
    assert.has_error(function() jwt.sign({sub = {}}, 60) end)
    assert.has_error(function() jwt.sign({}, 0) end)
    assert.has_error(function() jwt.verify(nil) end)
  end)
end)

describe("the fake host.password", function()
  local password = fakes.password()

  it("verifies what it hashed and tells old hashes apart", function()
    local hash = password.hash("pw")
    assert.is_true(password.verify(hash, "pw"))
    assert.is_false(password.verify(hash, "other"))
    assert.is_false(password.needs_rehash(hash))
    assert.is_true(password.needs_rehash(password.stored("pw", true)))
    assert.is_false(password.verify_dummy("pw"))
  end)

  it("answers nil, busy when told the queue is full", function()
    password.busy = true
    assert.same({nil, "busy"}, {password.verify("h", "pw")})
    password.busy = false
  end)
end)
