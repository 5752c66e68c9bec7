-- spec/support/env_vars.lua — every environment variable moonkeep reads, and
-- where: the host through host_config_env_long / host_config_env_str (and
-- getenv, and config.c's env_bool), the scripts through lib/config.lua's
-- readers and any os.getenv. Read from the sources as text, so that a spec
-- can hold a list of them (docs/configuration.md, the task definition)
-- equal to what the code reads.
local util = require "support.util"

local env_vars = {}

local function read(path)
  return assert(util.read_file(path), "cannot read " .. path)
end

local function files(pattern)
  local p = io.popen("ls " .. pattern)
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local HOST_READERS = {"host_config_env_long", "host_config_env_str", "getenv", "env_bool"}
local SCRIPT_READERS = {str = true, int = true}

-- {NAME = {path = true, ...}}
function env_vars.read()
  local vars = {}
  local function add(name, path)
    vars[name] = vars[name] or {}
    vars[name][path] = true
  end
  for _, path in ipairs(files("host/*/*.c")) do
    local text = read(path)
    for _, fn in ipairs(HOST_READERS) do
      for name in text:gmatch("%f[%w_]" .. fn .. "%(%s*\"([A-Z0-9_]+)\"") do add(name, path) end
    end
  end
  local config = read("scripts/lib/config.lua")
  for fn, name in config:gmatch("%f[%w_](%a+)%(\"([A-Z0-9_]+)\"") do
    if SCRIPT_READERS[fn] then add(name, "scripts/lib/config.lua") end
  end
  for _, path in ipairs(files("scripts/*.lua scripts/*/*.lua")) do
    for name in read(path):gmatch("os%.getenv%(%s*\"([A-Z0-9_]+)\"") do add(name, path) end
  end
  return vars
end

return env_vars
