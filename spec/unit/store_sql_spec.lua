-- Every statement of lib/store.lua prepares against the schema of
-- migrations/ in a real PostgreSQL: types, columns and constraint names
-- agree. Needs psql and MOONKEEP_SQL_CHECK_URL (a database it may create a
-- scratch schema in, e.g. the DATABASE_URL of tools/pg-cluster.sh);
-- pending otherwise. The statements' behaviour is spec/e2e's business.
local kit = require "support.kit"

local url = os.getenv("MOONKEEP_SQL_CHECK_URL")

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function migrations()
  local names = {}
  local p = io.popen("ls migrations/*.sql")
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

local check = url and it or pending

describe("lib/store.lua's SQL", function()
  check("prepares against the migrated schema", function()
    local k = kit.new()
    local schema = "spec_sql_" .. tostring(os.time()) .. "_" .. tostring(math.random(1e6))
    local script = {"\\set ON_ERROR_STOP 1", "SET client_min_messages = warning;",
                    "CREATE SCHEMA " .. schema .. ";", "SET search_path = " .. schema .. ";"}
    for _, file in ipairs(migrations()) do script[#script + 1] = "\\i " .. file end
    local names = {}
    for name in pairs(k.store.SQL) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      script[#script + 1] = "PREPARE " .. name .. " AS " .. k.store.SQL[name] .. ";"
    end
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(script, "\n"), "\n")
    f:close()
    local p = io.popen("psql -X -q " .. sh_quote(url) .. " -f " .. path .. " 2>&1; echo \"rc=$?\"")
    local out = p:read("*a")
    p:close()
    os.execute("psql -X -q " .. sh_quote(url) .. " -c " .. sh_quote("DROP SCHEMA IF EXISTS " .. schema .. " CASCADE")
               .. " >/dev/null 2>&1")
    os.remove(path)
    assert.equal("rc=0", out:match("rc=%d+"), out)
  end)
end)
