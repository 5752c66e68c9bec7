-- host.json's string escaping (host/base/json.c), the real binding from
-- build/lua/host.so: what every response body and log line goes through.
-- Run from the repository root: busted --lua=luajit spec/unit/json_spec.lua
package.cpath = "build/lua/?.so;" .. package.cpath

local json = require "host.json"
local cjson = require "cjson"

local function encode_string(s)
  return assert(json.encode({s = s})):match('^{"s":(.*)}$')
end

describe("host.json string escaping", function()
  it("escapes quotes, backslashes and control characters", function()
    assert.equal([["a\"b\\c\n\r\t\u0001\u001f\u007f"]], encode_string('a"b\\c\n\r\t\1\31\127'))
  end)

  it("keeps valid UTF-8 and replaces every invalid byte with U+FFFD", function()
    assert.equal('"é€😀"', encode_string("é€😀"))
    assert.equal([["a\ufffdb\ufffd\ufffd"]], encode_string("a\255b\192\128"))
    assert.equal([["\ufffd\ufffd\ufffd"]], encode_string("\237\160\128")) -- a UTF-16 surrogate
  end)

  it("gives the same text for long strings, whatever falls on the piece boundaries", function()
    -- pieces of 4096 input bytes: put 2-, 3- and 4-byte sequences across the cut
    for _, char in ipairs({"é", "€", "😀"}) do
      for shift = 0, 4 do
        local s = ("x"):rep(4096 - shift) .. char:rep(2000) .. "\"\n"
        local encoded = encode_string(s)
        assert.equal(s, cjson.decode(encoded), char .. " shifted by " .. shift)
        assert.is_nil(encoded:find("ufffd", 1, true))
      end
    end
    local invalid = ("y"):rep(4095) .. "\255\255" .. ("z"):rep(9000)
    assert.equal(("y"):rep(4095) .. "\239\191\189\239\191\189" .. ("z"):rep(9000),
                 cjson.decode(encode_string(invalid)))
  end)

  it("keeps NUL bytes as \\u0000", function()
    assert.equal([["a\u0000b"]], encode_string("a\0b"))
  end)
end)

describe("host.json numbers", function()
  it("writes whole numbers as integers and keeps fractions exact", function()
    local cases = {
      {0, "0"}, {-0.0, "-0"}, {42, "42"}, {-1, "-1"}, {999999999999999, "999999999999999"},
      {1e15, "1000000000000000"}, {2 ^ 53, "9007199254740992"}, {-7.5, "-7.5"}, {0.1, "0.10000000000000001"},
    }
    for _, case in ipairs(cases) do
      assert.equal("[" .. case[2] .. "]", json.encode({case[1]}))
    end
  end)

  it("refuses NaN and infinity", function()
    assert.is_nil((json.encode({0 / 0})))
    assert.is_nil((json.encode({math.huge})))
  end)
end)
