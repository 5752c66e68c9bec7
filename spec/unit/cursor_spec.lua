-- lib/cursor.lua: opaque, HMAC-signed pagination cursors.
local kit = require "support.kit"

describe("cursor", function()
  local cursor

  before_each(function()
    kit.new()
    cursor = require "lib.cursor"
  end)

  it("gives back the id it was made with", function()
    local c = cursor.encode("users", "42")
    assert.equal("42", cursor.decode("users", c))
  end)

  it("is opaque: the id is not readable as such", function()
    local c = cursor.encode("users", "42")
    assert.is_nil(c:find("users:42", 1, true))
    assert.truthy(c:match("^[%w_-]+%.%x+$"))
  end)

  it("refuses a cursor whose payload was changed", function()
    local c = cursor.encode("users", "42")
    local crypto = require "host.crypto"
    local forged = crypto.b64url_encode("users:43") .. c:match("(%..*)$")
    assert.same({nil, cursor.MESSAGE}, {cursor.decode("users", forged)})
  end)

  it("refuses a cursor whose signature was changed", function()
    local c = cursor.encode("users", "42")
    local last = c:sub(-1)
    local flipped = c:sub(1, -2) .. (last == "0" and "1" or "0")
    assert.is_nil(cursor.decode("users", flipped))
  end)

  it("refuses a cursor of another list", function()
    assert.is_nil(cursor.decode("admins", cursor.encode("users", "42")))
  end)

  it("refuses a cursor signed with another key", function()
    local c = cursor.encode("users", "42")
    kit.new({env = {CURSOR_SECRET = "another secret, another server"}})
    local other = require "lib.cursor"
    assert.is_nil(other.decode("users", c))
  end)

  it("accepts the cursors of another worker with the same secret", function()
    local c = cursor.encode("users", "42")
    kit.new()
    assert.equal("42", require("lib.cursor").decode("users", c))
  end)

  for _, bad in ipairs({"", "abc", "....", "dXNlcnM6NDI", "dXNlcnM6NDI.", "!!.00", string.rep("a", 300)}) do
    it("refuses garbage " .. string.format("%q", bad:sub(1, 20)), function()
      assert.is_nil(cursor.decode("users", bad))
    end)
  end

  it("refuses a non-string", function()
    assert.is_nil(cursor.decode("users", 42))
  end)
end)
