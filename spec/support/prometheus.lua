-- spec/support/prometheus.lua — a strict reader of the Prometheus text
-- exposition format (0.0.4) for the metrics specs, and promtool's check.
--
--   local prom = require "support.prometheus"
--   local m = prom.parse(text)            -- raises on anything malformed
--   m:value("moonkeep_http_requests_total", {route = "/healthz", method = "GET", status = "200"})
--   m:sum("moonkeep_http_requests_total", {route = "/healthz"})   -- over the other labels
--   prom.promtool(text)                   -- true, or false and promtool's complaint
--
-- Strict means: every sample belongs to a family declared by one # TYPE
-- (and one # HELP) before it; a family's samples are contiguous; names and
-- label names are valid; label values use only the \\ \" \n escapes; no
-- label repeats; values are numbers (or +Inf, -Inf, NaN); histogram samples
-- are _bucket (with le), _sum and _count, buckets cumulative and ending at
-- +Inf equal to _count; counters are not negative; no sample repeats.
local prom = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = {counter = true, gauge = true, histogram = true, summary = true, untyped = true}

local Metrics = {}
Metrics.__index = Metrics

local function fail(n, line, why)
  error(("exposition line %d: %s\n  %s"):format(n, why, line), 0)
end

local function parse_value(s)
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  if not s:match("^[-+]?%d+%.?%d*[eE]?[-+]?%d*$") and not s:match("^[-+]?%.%d+") then return nil end
  return tonumber(s)
end

-- Parses `{a="x",b="y"}` starting at position i of line; returns labels, next position.
local function parse_labels(line, i, n)
  local labels, seen = {}, {}
  assert(line:sub(i, i) == "{")
  i = i + 1
  if line:sub(i, i) == "}" then return labels, i + 1 end
  while true do
    local name, after = line:match("^([^=]*)=()", i)
    if not name or not name:match(LABEL) then fail(n, line, "bad label name") end
    if seen[name] then fail(n, line, "label " .. name .. " repeated") end
    seen[name] = true
    i = after
    if line:sub(i, i) ~= '"' then fail(n, line, "label value not quoted") end
    i = i + 1
    local parts = {}
    while true do
      local c = line:sub(i, i)
      if c == "" then fail(n, line, "unterminated label value") end
      if c == '"' then i = i + 1; break end
      if c == "\\" then
        local e = line:sub(i + 1, i + 1)
        if e == "\\" then parts[#parts + 1] = "\\"
        elseif e == '"' then parts[#parts + 1] = '"'
        elseif e == "n" then parts[#parts + 1] = "\n"
        else fail(n, line, "bad escape \\" .. e) end
        i = i + 2
      else
        parts[#parts + 1] = c
        i = i + 1
      end
    end
    labels[name] = table.concat(parts)
    local c = line:sub(i, i)
    if c == "}" then return labels, i + 1 end
    if c ~= "," then fail(n, line, "expected , or } after a label") end
    i = i + 1
  end
end

local function label_key(labels, skip)
  local names = {}
  for k in pairs(labels) do if k ~= skip then names[#names + 1] = k end end
  table.sort(names)
  local parts = {}
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. labels[k] end
  return table.concat(parts, ",")
end

-- The family a sample name belongs to, given the declared types.
local function family_of(families, name)
  if families[name] then return name, "" end
  for _, suffix in ipairs({"_bucket", "_sum", "_count"}) do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and families[base] and
       (families[base].type == "histogram" or (families[base].type == "summary" and suffix ~= "_bucket")) then
      return base, suffix
    end
  end
  return nil
end

function prom.parse(text)
  assert(type(text) == "string", "no exposition text")
  if text ~= "" and text:sub(-1) ~= "\n" then error("exposition does not end with a newline", 0) end
  local families, order, samples, seen_samples = {}, {}, {}, {}
  local current, closed = nil, {}
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    if line == "" then fail(n, line, "empty line") end
    local kind, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
    if line:sub(1, 1) == "#" then
      if kind ~= "HELP" and kind ~= "TYPE" then fail(n, line, "comment that is neither HELP nor TYPE") end
      if not name:match(NAME) then fail(n, line, "bad metric name") end
      local f = families[name]
      if not f then
        if closed[name] then fail(n, line, "family declared again after its samples") end
        f = {name = name, samples = {}}
        families[name] = f
        order[#order + 1] = name
      end
      if current and current ~= name then closed[current] = true end
      current = name
      if kind == "HELP" then
        if f.help then fail(n, line, "second HELP") end
        f.help = rest
      else
        if f.type then fail(n, line, "second TYPE") end
        if #f.samples > 0 then fail(n, line, "TYPE after samples") end
        if not TYPES[rest] then fail(n, line, "unknown type") end
        f.type = rest
      end
    else
      local sname, pos = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)()")
      if not sname then fail(n, line, "bad sample name") end
      local labels = {}
      if line:sub(pos, pos) == "{" then labels, pos = parse_labels(line, pos, n) end
      local value_text, ts = line:sub(pos):match("^ (%S+) ?(%-?%d*)$")
      if not value_text then fail(n, line, "expected one space and a value") end
      local value = parse_value(value_text)
      if value == nil then fail(n, line, "value is not a number") end
      local fname, suffix = family_of(families, sname)
      if not fname then fail(n, line, "sample of an undeclared family") end
      local f = families[fname]
      if not f.type then fail(n, line, "sample before its TYPE") end
      if fname ~= current then fail(n, line, "family samples are not contiguous") end
      if f.type == "histogram" then
        if suffix == "" then fail(n, line, "histogram sample without _bucket/_sum/_count") end
        if (suffix == "_bucket") ~= (labels.le ~= nil) then fail(n, line, "le belongs on _bucket samples only") end
        if labels.le and not parse_value(labels.le) then fail(n, line, "le is not a number") end
      end
      if f.type == "counter" and (value < 0 or value ~= value) then fail(n, line, "negative or NaN counter") end
      local key = sname .. "{" .. label_key(labels) .. "}"
      if seen_samples[key] then fail(n, line, "sample repeated") end
      seen_samples[key] = true
      local sample = {name = sname, labels = labels, value = value, suffix = suffix, timestamp = ts ~= "" and ts or nil}
      f.samples[#f.samples + 1] = sample
      samples[#samples + 1] = sample
    end
  end
  -- histograms: buckets cumulative per label set, +Inf == _count
  for _, name in ipairs(order) do
    local f = families[name]
    if f.type == "histogram" then
      local groups = {}
      for _, s in ipairs(f.samples) do
        local key = label_key(s.labels, "le")
        local g = groups[key] or {buckets = {}}
        groups[key] = g
        if s.suffix == "_bucket" then g.buckets[#g.buckets + 1] = {le = parse_value(s.labels.le), v = s.value}
        elseif s.suffix == "_count" then g.count = s.value
        else g.sum = s.value end
      end
      for key, g in pairs(groups) do
        table.sort(g.buckets, function(a, b) return a.le < b.le end)
        local last = -1
        for _, b in ipairs(g.buckets) do
          if b.v < last then error(("histogram %s{%s}: buckets not cumulative"):format(name, key), 0) end
          last = b.v
        end
        local top = g.buckets[#g.buckets]
        if not top or top.le ~= math.huge then error(("histogram %s{%s}: no +Inf bucket"):format(name, key), 0) end
        if g.count ~= top.v then error(("histogram %s{%s}: _count ~= +Inf bucket"):format(name, key), 0) end
        if g.sum == nil then error(("histogram %s{%s}: no _sum"):format(name, key), 0) end
      end
    end
  end
  return setmetatable({families = families, order = order, samples = samples, text = text}, Metrics)
end

local function matches(labels, want)
  for k, v in pairs(want or {}) do
    if labels[k] ~= v then return false end
  end
  return true
end

-- The value of the one sample named `name` whose labels are exactly `labels`
-- (nil when there is none).
function Metrics:value(name, labels)
  labels = labels or {}
  local want = label_key(labels)
  for _, s in ipairs(self.samples) do
    if s.name == name and label_key(s.labels) == want then return s.value end
  end
  return nil
end

-- The sum over the samples named `name` whose labels include `labels`.
function Metrics:sum(name, labels)
  local total = 0
  for _, s in ipairs(self.samples) do
    if s.name == name and matches(s.labels, labels) then total = total + s.value end
  end
  return total
end

-- Every sample named `name` (with labels including `labels`).
function Metrics:select(name, labels)
  local out = {}
  for _, s in ipairs(self.samples) do
    if s.name == name and matches(s.labels, labels) then out[#out + 1] = s end
  end
  return out
end

-- promtool (Debian's prometheus package) reads the exposition on stdin and
-- lints it. Returns true, or false and what it said; nil when promtool is
-- not installed.
function prom.promtool(text)
  local have = os.execute("command -v promtool >/dev/null 2>&1")
  if have ~= 0 and have ~= true then return nil, "promtool is not installed" end
  local input = os.tmpname()
  local f = assert(io.open(input, "w"))
  f:write(text)
  f:close()
  local p = io.popen(("promtool check metrics < %q 2>&1; echo \"exit=$?\""):format(input))
  local out = p:read("*a")
  p:close()
  os.remove(input)
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  out = out:gsub("exit=%d+%s*$", "")
  return code == 0 and out == "", out
end

return prom
