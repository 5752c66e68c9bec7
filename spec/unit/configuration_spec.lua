-- docs/configuration.md is the one table of the environment variables
-- moonkeep reads. It is held equal to the code here: the variables the host
-- reads (host_config_env_*, getenv) and the scripts read (lib/config.lua),
-- collected from the sources by spec/support/env_vars.lua.
local env_vars = require "support.env_vars"
local util = require "support.util"

local DOC = "docs/configuration.md"

-- {NAME = {readers = {path = true}, line = n}} from the table's rows: the
-- first cell names one or more variables, the third the files that read them.
local function documented()
  local rows, n = {}, 0
  for line in assert(util.read_file(DOC)):gmatch("[^\n]*") do
    n = n + 1
    local first, _, readers = line:match("^| ([^|]+) | ([^|]*) | ([^|]*) |")
    if first and first:find("`[A-Z]") then
      local set = {}
      for path in readers:gmatch("`([%w_/.]+)`") do set[path] = true end
      for name in first:gmatch("`([A-Z][A-Z0-9_]+)`") do
        assert.is_nil(rows[name], name .. " has two rows in " .. DOC)
        rows[name] = {readers = set, line = n}
      end
    end
  end
  return rows
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

describe("docs/configuration.md", function()
  local doc, reads

  setup(function()
    doc = documented()
    reads = env_vars.read()
  end)

  it("is read from its table, and the collector finds the variables it must", function()
    for _, name in ipairs({"PORT", "DATABASE_URL", "MAIL_URL", "DB_POOL_SIZE", "PUBLIC_URL", "SESSION_MAX_AGE_S"}) do
      assert.is_table(doc[name], name .. " is not in " .. DOC)
      assert.is_table(reads[name], name .. " was not found in the code")
    end
  end)

  it("has a row for every variable the host and the scripts read", function()
    for _, name in ipairs(keys(reads)) do
      assert.is_table(doc[name], name .. " is read by " .. table.concat(keys(reads[name]), ", ")
        .. " but has no row in " .. DOC)
    end
  end)

  it("has no row for a variable nothing reads", function()
    for _, name in ipairs(keys(doc)) do
      assert.is_table(reads[name], name .. " (" .. DOC .. ":" .. doc[name].line .. ") is read by nothing")
    end
  end)

  it("names exactly the files that read each variable", function()
    for _, name in ipairs(keys(doc)) do
      if reads[name] then
        assert.same(keys(reads[name]), keys(doc[name].readers),
          name .. ": the \"read by\" cell at " .. DOC .. ":" .. doc[name].line)
      end
    end
  end)
end)
