-- The host's own error replies (host/server/http_errors.c, the errors[] and
-- reasons[] tables) and the scripts' (lib/http.lua, STATUS and MESSAGES) are
-- one table for a client: a code means one status and says one message,
-- whoever answers. This reads the C table from the source and holds the two
-- equal.
local http = require "lib.http"
local util = require "support.util"

local SOURCE = "host/server/http_errors.c"

-- The entries of the C array `name`: {status, code, message} per line of
-- the form {400, "bad_request", "the request is not valid"}.
local function c_table(name)
  local text = assert(util.read_file(SOURCE))
  local body = text:match(name .. "%[%] = {(.-)\n};")
  assert(body, name .. "[] not found in " .. SOURCE)
  local rows = {}
  for status, rest in (body .. "\n"):gmatch("{(%d+), (\"[^\n]-)},?\n") do
    local fields = {}
    for s in rest:gmatch('"([^"]*)"') do fields[#fields + 1] = s end
    rows[#rows + 1] = {status = tonumber(status), fields = fields}
  end
  return rows
end

describe("the host's error table and lib/http.lua", function()
  local errors = c_table("errors")

  it("are read from the C source", function()
    assert.is_true(#errors >= 8, "the C table has " .. #errors .. " entries")
  end)

  it("give every code the host answers the same status", function()
    for _, e in ipairs(errors) do
      local code = e.fields[1]
      assert.equal(e.status, http.STATUS[code], code .. ": status in lib/http.lua")
    end
  end)

  it("give every code the host answers the same message", function()
    for _, e in ipairs(errors) do
      local code, message = e.fields[1], e.fields[2]
      assert.equal(message, http.MESSAGES[code], code .. ": message in lib/http.lua")
    end
  end)

  it("answer every status the host answers with one code only", function()
    local seen = {}
    for _, e in ipairs(errors) do
      assert.is_nil(seen[e.status], "status " .. e.status .. " twice in " .. SOURCE)
      seen[e.status] = true
    end
  end)

  it("have a reason phrase for every status lib/http.lua answers that evhttp 2.1 does not name", function()
    -- evhttp 2.1's phrase tables stop at 417 (client) and 505 (server)
    local phrases = {}
    for _, r in ipairs(c_table("reasons")) do phrases[r.status] = r.fields[1] end
    for code, status in pairs(http.STATUS) do
      if (status > 417 and status < 500) or status > 505 then
        assert.is_string(phrases[status], code .. " (" .. status .. ") has no reason phrase in " .. SOURCE)
      end
    end
  end)
end)
