-- tools/lua-coverage.lua — the Lua half of `make coverage` (run with luajit).
--   luajit tools/lua-coverage.lua COUNTS_DIR REPORT_FILE [FLOOR_PERCENT]
-- Merges the .cov files written by spec/support/coverage.lua, works out which
-- lines of each scripts/**/*.lua can run, prints one line per file and the
-- total, writes the same plus the missed line numbers to REPORT_FILE, and
-- exits 1 when the total is below FLOOR_PERCENT.
--
-- Which lines can run is read from LuaJIT's own bytecode (jit.util): a line
-- counts when some instruction of some function in the file carries it —
-- exactly the lines a line hook can report. The implicit `return` a function
-- gets at its closing `end` is left out: it is no statement of ours, and it
-- never runs in a function that always returns earlier.
local util = require "jit.util"
local vmdef = require "jit.vmdef"
local band = require("bit").band

local counts_dir, report_path, floor = arg[1], arg[2], tonumber(arg[3] or "0")
assert(counts_dir and report_path, "usage: luajit tools/lua-coverage.lua COUNTS_DIR REPORT_FILE [FLOOR]")

local function opname(ins)
  local op = band(ins, 0xff)
  return vmdef.bcnames:sub(op * 6 + 1, op * 6 + 6):gsub(" +$", "")
end

-- Adds the lines of proto `fn` and of every function nested in it to `lines`.
local function collect(fn, lines)
  local info = util.funcinfo(fn)
  local last_pc = info.bytecodes - 1
  for pc = 1, last_pc do
    local ins = util.funcbc(fn, pc)
    local line = util.funcinfo(fn, pc).currentline
    local implicit_end = pc == last_pc and opname(ins) == "RET0" and line == info.lastlinedefined
    if line and line > 0 and not implicit_end then lines[line] = true end
  end
  if info.children then
    for i = -1, -1e9, -1 do
      local k = util.funck(fn, i)
      if k == nil then break end
      if type(k) == "proto" then collect(k, lines) end
    end
  end
end

local function executable_lines(path)
  local fn, err = loadfile(path)
  if not fn then error(err) end
  local lines = {}
  collect(fn, lines)
  return lines
end

local function list(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- hits[name][line] over every .cov file
local hits = {}
for _, path in ipairs(list(("find %q -name '*.cov' -type f 2>/dev/null"):format(counts_dir))) do
  for line in io.lines(path) do
    local name, rest = line:match("^(%S+)(.*)$")
    if name then
      local h = hits[name] or {}
      hits[name] = h
      for l, n in rest:gmatch("(%d+)=(%d+)") do
        l = tonumber(l)
        h[l] = (h[l] or 0) + tonumber(n)
      end
    end
  end
end

-- "3-5,9" from a sorted list of line numbers
local function ranges(nums)
  local out, i = {}, 1
  while i <= #nums do
    local j = i
    while j < #nums and nums[j + 1] == nums[j] + 1 do j = j + 1 end
    out[#out + 1] = i == j and tostring(nums[i]) or (nums[i] .. "-" .. nums[j])
    i = j + 1
  end
  return table.concat(out, ",")
end

local report = {}
local function say(s)
  print(s)
  report[#report + 1] = s
end

local total, covered = 0, 0
local details = {}
for _, path in ipairs(list("find scripts -name '*.lua' -type f | LC_ALL=C sort")) do
  local lines = executable_lines(path)
  local h = hits[path] or {}
  local n, c, missed = 0, 0, {}
  for l in pairs(lines) do
    n = n + 1
    if h[l] then c = c + 1 else missed[#missed + 1] = l end
  end
  table.sort(missed)
  total, covered = total + n, covered + c
  say(("%-28s %5d %5d %6.1f%%"):format(path, n, c, n > 0 and 100 * c / n or 100))
  if #missed > 0 then details[#details + 1] = ("%s: %s"):format(path, ranges(missed)) end
end
local pct = total > 0 and 100 * covered / total or 100
say(("%-28s %5d %5d %6.1f%%"):format("TOTAL scripts/", total, covered, pct))

local f = assert(io.open(report_path, "w"))
f:write("file                          lines  run    cover\n")
f:write(table.concat(report, "\n"), "\n\nlines never run:\n", table.concat(details, "\n"), "\n")
f:close()

if pct + 1e-9 < floor then
  print(("lua coverage %.1f%% is below the floor of %g%%"):format(pct, floor))
  os.exit(1)
end
