-- spec/support/coverage.lua — Lua line coverage of scripts/ for `make coverage`
-- (LuaCov is not packaged for Debian's LuaJIT). A debug.sethook line counter:
-- it counts the lines run in files that are scripts/ and writes the counts to
-- a new file in $MOONKEEP_LUA_COVERAGE_DIR when the VM closes (or os.exit).
-- tools/lua-coverage.lua merges those files into the report.
--
-- Two ways in, both inert unless MOONKEEP_LUA_COVERAGE_DIR is set:
--   busted (unit, route and e2e specs): LUA_INIT=@spec/support/coverage.lua;
--     luajit runs it before busted starts. Under plain Lua it does nothing
--     (busted's outer `lua` process only re-executes itself under luajit).
--   the server's VMs: the host runs the file named by MOONKEEP_LUA_COVERAGE
--     in each new VM before app.lua, passing the VM's scripts folder as `...`
--     (a snapshot copy, RUNTIME_DIR/gen-N). A file from that folder counts as
--     scripts/REL only when its content equals the repository's
--     scripts/REL, so fixture script folders and edited copies (the reload
--     specs) never count against the real files.
--
-- Environment: MOONKEEP_LUA_COVERAGE_DIR (where counts go; unset: off),
-- MOONKEEP_LUA_COVERAGE_ROOT (the repository, default "."),
-- MOONKEEP_LUA_COVERAGE_HOST_SO (busted only: the host.so to load host.* from).
--
-- Counting needs the interpreter: JIT-compiled traces call no hooks, so the
-- JIT is switched off in the VM being measured (coverage runs are slower).
local out_dir = os.getenv("MOONKEEP_LUA_COVERAGE_DIR")
if out_dir == nil or out_dir == "" or type(jit) ~= "table" then return end

local vm_dir = ... -- the host passes the VM's scripts folder; busted passes nothing
if type(vm_dir) ~= "string" then vm_dir = nil end
-- The repository root, to compare snapshot copies with scripts/ (default: cwd).
local root = os.getenv("MOONKEEP_LUA_COVERAGE_ROOT") or "."

local getinfo, sethook = debug.getinfo, debug.sethook
local io_open, tostring, pairs = io.open, tostring, pairs

jit.off()
jit.flush()

-- Specs `require "host.*"` from build/lua/host.so (spec/helper.lua puts it
-- first on the C path); a coverage run wants the instrumented copy instead,
-- named by MOONKEEP_LUA_COVERAGE_HOST_SO: a loader placed right after
-- package.preload answers for host.* before the C path is searched.
local host_so = os.getenv("MOONKEEP_LUA_COVERAGE_HOST_SO")
if host_so and host_so ~= "" and vm_dir == nil then
  table.insert(package.loaders, 2, function(name)
    if name:sub(1, 5) ~= "host." then return nil end
    local open, err = package.loadlib(host_so, "luaopen_" .. name:gsub("%.", "_"))
    if not open then return "\n\t" .. tostring(err) end
    return open
  end)
end

local function read_all(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Maps a chunk name to "scripts/REL", or false for a file that is not ours.
local function classify(source)
  if source:sub(1, 1) ~= "@" then return false end
  local path = source:sub(2):gsub("^%./", "")
  if vm_dir then
    local prefix = vm_dir:gsub("/+$", "") .. "/"
    if path:sub(1, #prefix) ~= prefix then return false end
    local rel = path:sub(#prefix + 1)
    local mine = read_all(path)
    if mine == nil or mine ~= read_all(root .. "/scripts/" .. rel) then return false end
    return "scripts/" .. rel
  end
  if path:sub(1, 8) == "scripts/" then return path end
  local abs_prefix = root .. "/scripts/"
  if path:sub(1, #abs_prefix) == abs_prefix then return "scripts/" .. path:sub(#abs_prefix + 1) end
  return false
end

local counts = {} -- chunk name -> {line -> hits}, or false when not ours
local names = {}  -- chunk name -> "scripts/REL"
local dump        -- below
-- Finalized by lua_close (the host closing a generation, busted's
-- os.exit(code, true)); the hook holds it, so it lives as long as the hook.
local sentinel = newproxy(true)
getmetatable(sentinel).__gc = function() dump() end

local function hook(_, line)
  if sentinel == nil then return end
  local source = getinfo(2, "S").source
  local c = counts[source]
  if c == nil then
    local name = classify(source)
    c = name and {} or false
    counts[source], names[source] = c, name
  end
  if c then c[line] = (c[line] or 0) + 1 end
end

local written = false
function dump()
  if written then return end
  written = true
  sethook()
  local merged = {}
  for source, c in pairs(counts) do
    if c then
      local m = merged[names[source]] or {}
      merged[names[source]] = m
      for line, n in pairs(c) do m[line] = (m[line] or 0) + n end
    end
  end
  if next(merged) == nil then return end
  -- One file per VM: the table's address and the clock keep names apart
  -- between the processes and VMs of one run.
  local id = tostring(counts):match("0x(%x+)") or tostring(math.random(1e9))
  local path = ("%s/%d-%s-%d.cov"):format(out_dir, os.time(), id, math.floor(os.clock() * 1e6))
  local f = io_open(path, "w")
  if not f then return end
  for name, m in pairs(merged) do
    local parts = {name}
    for line, n in pairs(m) do parts[#parts + 1] = line .. "=" .. n end
    f:write(table.concat(parts, " "), "\n")
  end
  f:close()
end

-- os.exit is wrapped too, for an exit that does not close the state.
local os_exit = os.exit
os.exit = function(...) -- luacheck: ignore 122 (wrapping a standard function on purpose)
  dump()
  return os_exit(...)
end

sethook(hook, "l")
