-- bench/report.lua — the table of `make bench`.
--
--   luajit bench/report.lua RESULTS.jsonl OUT.json...
--       one run: RESULTS.jsonl holds the facts bench/run.sh collected (one
--       JSON object a line: wrk scenarios from wrk_common.lua, pgbench,
--       hash, rss, meta); prints the table and writes it to each OUT.json
--   luajit bench/report.lua --median OUT.json RUN.json...
--       the median over several runs' OUT.json files: medians of each
--       number, and of each ratio as measured within its own run
--   luajit bench/report.lua --scale RESULTS.jsonl OUT.json...
--       bench/scale.sh's facts (scenarios named KIND@SIZE): the scale table,
--       each row's largest size ÷ smallest size, and the targets
--
-- Ratios are always taken within one run (the machine is shared and noisy:
-- only numbers measured side by side compare). A scenario ran in slices
-- interleaved with its references (bench/run.sh): its req/s is over all its
-- slices, its latencies the median of the slices'.
local cjson = require "cjson"

local format, concat, sort = string.format, table.concat, table.sort
local MIB = 1024

-- ---- what is compared with what ------------------------------------------------

-- Each row: id (the wrk/pgbench scenario), label, and the references its
-- throughput is divided by (or its p99, for `p99_of`); `tail`: its p99 ÷ p50
-- is printed beside them (the median of the slices' own p99 ÷ p50).
local ROWS = {
  {id = "ref_bare_shared", label = "ref: bare evhttp, shared socket"},
  {id = "ref_bare_reuseport", label = "ref: bare evhttp, SO_REUSEPORT"},
  {id = "ref_nginx", label = "ref: nginx"},
  {id = "ref_nginx_lua", label = "ref: nginx + lua-nginx-module, GET /"},
  {id = "ref_pgbench_select", label = "ref: pgbench -S -M prepared"},
  {id = "ref_pgbench_writes", label = "ref: pgbench -N -M prepared"},
  {id = "ref_hash", label = "ref: argon2id, cores / verify time"},
  {id = "ref_hash_parallel", label = "ref: argon2id, verifies/s on all cores"},
  {id = "mk_root", label = "GET /", refs = {"ref_bare_shared", "ref_nginx", "ref_nginx_lua"}},
  {id = "mk_healthz", label = "GET /healthz", refs = {"ref_bare_shared", "ref_nginx"}},
  {id = "mk_user_read", label = "GET /users/{id} (auth)", refs = {"ref_pgbench_select"}, tail = true},
  {id = "mk_user_list", label = "GET /users?limit=20 (auth)", refs = {"ref_pgbench_select"}},
  {id = "mk_writes", label = "POST /user + DELETE (auth)", refs = {"ref_pgbench_writes"}},
  {id = "mk_login", label = "POST /auth/login", refs = {"ref_hash", "ref_hash_parallel"}},
  {id = "mk_healthz_idle", label = "GET /healthz, 1 conn, idle"},
  {id = "mk_healthz_storm", label = "GET /healthz, 1 conn, login storm", p99_of = "mk_healthz_idle"},
}

local SHORT = {
  ref_bare_shared = "bare", ref_nginx = "nginx", ref_nginx_lua = "nginx-lua", ref_pgbench_select = "pgbench -S",
  ref_pgbench_writes = "pgbench -N", ref_hash = "cores/hash", ref_hash_parallel = "hash/s",
  mk_healthz_idle = "idle p99",
}

-- ---- one run -------------------------------------------------------------------

local function median(list)
  local xs = {}
  for _, v in ipairs(list) do
    if type(v) == "number" then xs[#xs + 1] = v end
  end
  if #xs == 0 then return nil end
  sort(xs)
  local n = #xs
  if n % 2 == 1 then return xs[(n + 1) / 2] end
  return (xs[n / 2] + xs[n / 2 + 1]) / 2
end

local function field(list, key)
  local out = {}
  for i, x in ipairs(list) do out[i] = x[key] end
  return out
end

local function sum(list, key)
  local t = 0
  for _, x in ipairs(list) do t = t + (x[key] or 0) end
  return t
end

-- The slices of one scenario as one measurement: throughput over the time
-- of all slices, the median of their latencies, every error.
local function merge(slices)
  local first = slices[1]
  local secs = sum(slices, "duration_s")
  local m = {scenario = first.scenario, slices = #slices, duration_s = secs,
             requests = sum(slices, "requests"),
             p50_ms = median(field(slices, "p50_ms")), p90_ms = median(field(slices, "p90_ms")),
             p99_ms = median(field(slices, "p99_ms")), avg_ms = median(field(slices, "avg_ms")),
             errors = first.errors and sum(slices, "errors"), non2xx = first.non2xx and sum(slices, "non2xx")}
  local tails = {}
  for i, x in ipairs(slices) do
    if x.p50_ms and x.p99_ms and x.p50_ms > 0 then tails[i] = x.p99_ms / x.p50_ms end
  end
  m.tail = median(tails)
  if first.kind == "pgbench" then
    local weighted = 0
    for _, x in ipairs(slices) do weighted = weighted + x.rps * x.duration_s end
    m.rps = secs > 0 and weighted / secs or median(field(slices, "rps"))
    m.requests = nil
  else
    m.rps = secs > 0 and m.requests / secs or 0
    local max = 0
    for _, x in ipairs(slices) do if (x.max_ms or 0) > max then max = x.max_ms end end
    m.max_ms = max
  end
  return m
end

-- hash_cost's figures: the first two ways moonkeep hashes (argon2id memory
-- kept mapped), the *_fresh_mapping ones libsodium on its own.
local HASH_FIGURES = {"verify_ms", "verify_ms_fresh_mapping", "interactive_verify_ms", "parallel_verifies_per_s",
                "parallel_verifies_per_s_fresh_mapping"}

local function read_facts(path)
  local facts = {scenarios = {}, rss = {}}
  local slices, hashes = {}, {}
  for line in io.lines(path) do
    if line:match("%S") then
      local f = cjson.decode(line)
      local kind = f.kind or "wrk"
      if kind == "meta" then facts.meta = f
      elseif kind == "hash" then hashes[#hashes + 1] = f
      elseif kind == "rss" then facts.rss[f.label] = f
      else
        slices[f.scenario] = slices[f.scenario] or {}
        local list = slices[f.scenario]
        list[#list + 1] = f
      end
    end
  end
  for name, list in pairs(slices) do facts.scenarios[name] = merge(list) end
  if #hashes > 0 then
    local h = hashes[1]
    facts.hash = {cores = h.cores, opslimit = h.opslimit, memlimit_kib = h.memlimit_kib, threads = h.threads,
                  samples = #hashes}
    for _, key in ipairs(HASH_FIGURES) do facts.hash[key] = median(field(hashes, key)) end
  end
  return facts
end

local function max_rss(snapshot)
  local m = 0
  for _, w in ipairs(snapshot and snapshot.workers or {}) do
    if w.rss_kib > m then m = w.rss_kib end
  end
  return m
end

-- Largest growth of one worker's RSS from `a` to `b` (same pid), as a
-- fraction; nil when no worker is in both (one was restarted).
local function rss_growth(a, b)
  local before, worst = {}, nil
  for _, w in ipairs(a and a.workers or {}) do before[w.pid] = w.rss_kib end
  for _, w in ipairs(b and b.workers or {}) do
    local was = before[w.pid]
    if was and was > 0 then
      local g = (w.rss_kib - was) / was
      if not worst or g > worst then worst = g end
    end
  end
  return worst
end

local function build(facts)
  local s = facts.scenarios
  local hash = facts.hash
  if hash then
    s.ref_hash = {rps = hash.cores * 1000 / hash.verify_ms}
    s.ref_hash_parallel = {rps = hash.parallel_verifies_per_s}
  end
  local doc = {meta = facts.meta, hash = hash, rows = {}, rss = {}, targets = {}}
  for _, r in ipairs(ROWS) do
    local m = s[r.id]
    if m then
      local row = {id = r.id, label = r.label, rps = m.rps, p50_ms = m.p50_ms, p99_ms = m.p99_ms,
                   avg_ms = m.avg_ms, errors = m.errors, non2xx = m.non2xx, requests = m.requests,
                   slices = m.slices, ratios = {}}
      for _, ref in ipairs(r.refs or {}) do
        if s[ref] and s[ref].rps and s[ref].rps > 0 then row.ratios[ref] = m.rps / s[ref].rps end
      end
      if r.p99_of and s[r.p99_of] then row.ratios[r.p99_of] = m.p99_ms / s[r.p99_of].p99_ms end
      if r.tail then row.tail = m.tail end
      doc.rows[#doc.rows + 1] = row
    end
  end

  local idle, k10, k100, stop = facts.rss.idle, facts.rss.after_10k, facts.rss.after_100k, facts.rss["end"]
  doc.rss = {
    idle_max_kib = max_rss(idle), after_10k_max_kib = max_rss(k10), after_100k_max_kib = max_rss(k100),
    end_max_kib = max_rss(stop), after_100k_requests = k100 and k100.requests,
    end_requests = stop and stop.requests,
    growth_10k_to_100k = rss_growth(k10, k100), growth_10k_to_end = rss_growth(k10, stop),
    snapshots = facts.rss,
  }

  local function ratio(id, ref)
    for _, row in ipairs(doc.rows) do
      if row.id == id then return row.ratios[ref] end
    end
  end
  local owasp = hash and hash.opslimit >= 2 and hash.memlimit_kib >= 19456
  local T = doc.targets
  T[#T + 1] = {name = "trivial Lua route (GET /healthz) vs bare evhttp, same processes",
               value = ratio("mk_healthz", "ref_bare_shared"), op = ">=", limit = 0.9, unit = "x"}
  T[#T + 1] = {name = "GET / vs bare evhttp (for the record)",
               value = ratio("mk_root", "ref_bare_shared"), op = ">=", limit = 0.9, unit = "x", info = true}
  T[#T + 1] = {name = "GET / vs nginx + lua-nginx-module (same body through cjson, JSON access log)",
               value = ratio("mk_root", "ref_nginx_lua"), op = ">=", limit = 0.9, unit = "x"}
  T[#T + 1] = {name = "authenticated single-row read vs pgbench -S TPS",
               value = ratio("mk_user_read", "ref_pgbench_select"), op = ">=", limit = 0.3, unit = "x"}
  local read_row
  for _, row in ipairs(doc.rows) do if row.id == "mk_user_read" then read_row = row end end
  T[#T + 1] = {name = format("authenticated read's tail at %s connections: p99 / p50",
                             tostring(facts.meta and facts.meta.connections or "?")),
               value = read_row and read_row.tail, op = "<=", limit = 2.5, unit = "x"}
  T[#T + 1] = {name = format("login vs cores / verify time (argon2id t=%s m=%s KiB%s)",
                             hash and hash.opslimit or "?", hash and hash.memlimit_kib or "?",
                             owasp and ", >= OWASP minimum" or ", BELOW OWASP minimum"),
               value = ratio("mk_login", "ref_hash"), op = ">=", limit = 0.9, unit = "x",
               also = owasp}
  T[#T + 1] = {name = "/healthz p99 during a login storm vs idle p99",
               value = ratio("mk_healthz_storm", "mk_healthz_idle"), op = "<=", limit = 2, unit = "x"}
  T[#T + 1] = {name = "idle RSS per worker (largest)",
               value = doc.rss.idle_max_kib / MIB, op = "<=", limit = 32, unit = "MiB"}
  T[#T + 1] = {name = format("RSS after %s reads vs after 10k (largest growth of a worker)",
                             tostring(doc.rss.after_100k_requests)),
               value = doc.rss.growth_10k_to_100k and doc.rss.growth_10k_to_100k * 100,
               op = "<=", limit = 10, unit = "%"}
  T[#T + 1] = {name = format("RSS at the end (%s requests, logins too) vs after 10k (for the record)",
                             tostring(doc.rss.end_requests)),
               value = doc.rss.growth_10k_to_end and doc.rss.growth_10k_to_end * 100,
               op = "<=", limit = 10, unit = "%", info = true}
  return doc
end

-- ---- medians -------------------------------------------------------------------

local function median_docs(docs)
  local out = {meta = docs[#docs].meta, hash = docs[#docs].hash, runs = #docs, rows = {}, targets = {},
               rss = {}}
  out.meta.runs = #docs
  for _, key in ipairs(HASH_FIGURES) do
    local vals = {}
    for _, d in ipairs(docs) do vals[#vals + 1] = d.hash and d.hash[key] end
    out.hash[key] = median(vals)
  end
  for i, row in ipairs(docs[#docs].rows) do
    local m = {id = row.id, label = row.label, ratios = {}}
    for _, key in ipairs({"rps", "p50_ms", "p99_ms", "avg_ms", "errors", "non2xx", "requests", "tail"}) do
      local vals = {}
      for _, d in ipairs(docs) do vals[#vals + 1] = d.rows[i] and d.rows[i][key] end
      m[key] = median(vals)
    end
    for ref in pairs(row.ratios) do
      local vals = {}
      for _, d in ipairs(docs) do vals[#vals + 1] = d.rows[i] and d.rows[i].ratios[ref] end
      m.ratios[ref] = median(vals)
    end
    out.rows[i] = m
  end
  for i, t in ipairs(docs[#docs].targets) do
    local vals = {}
    for _, d in ipairs(docs) do vals[#vals + 1] = d.targets[i] and d.targets[i].value end
    out.targets[i] = {name = t.name, op = t.op, limit = t.limit, unit = t.unit, also = t.also,
                      info = t.info, value = median(vals)}
  end
  for _, key in ipairs({"idle_max_kib", "after_10k_max_kib", "after_100k_max_kib", "end_max_kib",
                        "after_100k_requests", "end_requests", "growth_10k_to_100k", "growth_10k_to_end"}) do
    local vals = {}
    for _, d in ipairs(docs) do vals[#vals + 1] = d.rss[key] end
    out.rss[key] = median(vals)
  end
  return out
end

-- ---- printing ------------------------------------------------------------------

local function num(v, fmt)
  if type(v) ~= "number" then return "-" end
  return format(fmt, v)
end

local function judge(t)
  if type(t.value) ~= "number" then return "n/a" end
  local ok = (t.op == ">=" and t.value >= t.limit) or (t.op == "<=" and t.value <= t.limit)
  if t.also == false then ok = false end
  if t.info then return ok and "pass" or "miss" end -- for the record, not a target
  return ok and "PASS" or "MISS"
end

local function print_doc(doc)
  local m = doc.meta or {}
  print(format("\nmoonkeep bench%s — %s, nproc %s, %s workers x DB_POOL_SIZE %s, wrk -t%s -c%s (login -c%s),"
               .. " %s x %s s per scenario%s",
               doc.runs and format(" (median of %d runs)", doc.runs) or "", m.cpu or "?", m.nproc or "?",
               m.workers or "?", m.db_pool_size or "?", m.wrk_threads or "?", m.connections or "?",
               m.login_connections or "?", m.rounds or "?", m.slice_s or "?", m.time and (", " .. m.time) or ""))
  local line = string.rep("-", 118)
  print(line)
  print(format("%-42s %10s %9s %9s %7s  %s", "scenario", "req/s", "p50 ms", "p99 ms", "errors", "ratio to reference"))
  print(line)
  for _, r in ipairs(doc.rows) do
    local parts = {}
    for ref, v in pairs(r.ratios) do
      parts[#parts + 1] = format("%.2fx %s", v, SHORT[ref] or ref)
    end
    sort(parts)
    if r.tail then parts[#parts + 1] = format("p99/p50 %.2f", r.tail) end
    local errs = (r.errors or 0) + (r.non2xx or 0)
    print(format("%-42s %10s %9s %9s %7s  %s", r.label, num(r.rps, "%.0f"),
                 num(r.p50_ms, "%.2f"), num(r.p99_ms, "%.2f"),
                 r.errors and format("%d", errs) or "-", concat(parts, ", ")))
  end
  print(line)
  print("targets")
  for _, t in ipairs(doc.targets) do
    print(format("  %-4s %-84s %s %s (target %s %s)", judge(t), t.name,
                 num(t.value, t.unit == "x" and "%.2f" or "%.1f"), t.unit, t.op, tostring(t.limit)))
  end
  local r = doc.rss
  print(format("RSS per worker (largest): idle %.1f MiB, after 10k %.1f MiB, after %s %.1f MiB, at the end (%s) %.1f MiB",
               (r.idle_max_kib or 0) / MIB, (r.after_10k_max_kib or 0) / MIB, tostring(r.after_100k_requests),
               (r.after_100k_max_kib or 0) / MIB, tostring(r.end_requests), (r.end_max_kib or 0) / MIB))
  if doc.hash then
    local h = doc.hash
    print(format("argon2id verify %.1f ms (t=%d, m=%d KiB, p=1, memory kept mapped as moonkeep does; a new mapping "
                 .. "per hash: %.1f ms); INTERACTIVE preset %.1f ms; %d threads: %.1f verifies/s (new mappings: %.1f)",
                 h.verify_ms, h.opslimit, h.memlimit_kib, h.verify_ms_fresh_mapping or 0, h.interactive_verify_ms,
                 h.threads, h.parallel_verifies_per_s, h.parallel_verifies_per_s_fresh_mapping or 0))
  end
end

local function write(doc, path)
  for _, t in ipairs(doc.targets) do t.result = judge(t) end
  local f = assert(io.open(path, "w"))
  f:write(cjson.encode(doc), "\n")
  f:close()
end

-- ---- the scale table (bench/scale.sh) ---------------------------------------------

local SCALE_ROWS = {
  {kind = "read", label = "GET /users/{id} (auth), random id"},
  {kind = "first", label = "GET /users?limit=20, first page"},
  {kind = "deep", label = "GET /users?limit=20, cursor at 90 %"},
  {kind = "q_common", label = "?q=son (common, ~14 %)"},
  {kind = "q_rare", label = "?q=quixote (rare, 10 users)"},
  {kind = "q_one", label = "?q=a (one letter)"},
  {kind = "login", label = "POST /auth/login storm (-c16)", note = "largest: + sessions, rate-limit rows"},
  {kind = "q_none2", label = "?q=zq (2 letters, no match; -c2)", info = true},
}
local SCALE_LIMIT = 1.5 -- largest size within 1.5x of the smallest, both ways

local function build_scale(facts)
  local sizes = facts.meta and facts.meta.sizes or {}
  local small, large = sizes[1], sizes[#sizes]
  local doc = {meta = facts.meta, rows = {}, targets = {}}
  for _, r in ipairs(SCALE_ROWS) do
    local row = {kind = r.kind, label = r.label, note = r.note, info = r.info, sizes = {}}
    for _, size in ipairs(sizes) do
      local m = facts.scenarios[r.kind .. "@" .. format("%d", size)]
      if m then
        row.sizes[#row.sizes + 1] = {size = size, rps = m.rps, p50_ms = m.p50_ms, p99_ms = m.p99_ms,
                                     errors = (m.errors or 0) + (m.non2xx or 0), requests = m.requests}
      end
    end
    local a, b = row.sizes[1], row.sizes[#row.sizes]
    if a and b and a.size == small and b.size == large and #sizes > 1 then
      row.rps_ratio = a.rps > 0 and b.rps / a.rps or nil
      -- no request answered within a slice: no latency to compare
      row.p99_ratio = (a.requests or 0) > 0 and (b.requests or 0) > 0 and a.p99_ms > 0 and b.p99_ms / a.p99_ms or nil
      local name = format("%s: req/s and p99 at %d users vs %d", r.label, large, small)
      doc.targets[#doc.targets + 1] = {name = name .. " (req/s)", value = row.rps_ratio, op = ">=",
                                       limit = 1 / SCALE_LIMIT, unit = "x", info = r.info}
      doc.targets[#doc.targets + 1] = {name = name .. " (p99)", value = row.p99_ratio, op = "<=",
                                       limit = SCALE_LIMIT, unit = "x", info = r.info}
    end
    doc.rows[#doc.rows + 1] = row
  end
  return doc
end

local function size_label(n)
  if n >= 1000000 and n % 1000000 == 0 then return format("%dM", n / 1000000) end
  if n >= 1000 and n % 1000 == 0 then return format("%dk", n / 1000) end
  return format("%d", n)
end

local function print_scale(doc)
  local m = doc.meta or {}
  local sizes = m.sizes or {}
  print(format("\nmoonkeep scale bench — %s, nproc %s, %s workers x DB_POOL_SIZE %s, wrk -c%s (login -c%s),"
               .. " %s x %s s per scenario and size; %s sessions and %s rate-limit rows added before the largest%s",
               m.cpu or "?", m.nproc or "?", m.workers or "?", m.db_pool_size or "?", m.connections or "?",
               m.login_connections or "?", m.rounds or "?", m.slice_s or "?", tostring(m.sessions),
               tostring(m.rate_rows), m.time and (", " .. m.time) or ""))
  local head = {format("%-40s", "scenario")}
  for _, size in ipairs(sizes) do
    head[#head + 1] = format("%16s", size_label(size) .. " req/s  p99")
  end
  local last = size_label(sizes[#sizes] or 0) .. "/" .. size_label(sizes[1] or 0)
  head[#head + 1] = format("  %-22s %s", last .. " req/s, p99", "errors")
  local line = string.rep("-", #concat(head, " ") + 4)
  print(line)
  print(concat(head, " "))
  print(line)
  for _, r in ipairs(doc.rows) do
    local cells = {format("%-40s", r.label)}
    local errs, by_size = 0, {}
    for _, x in ipairs(r.sizes) do
      by_size[x.size] = x
      errs = errs + x.errors
    end
    for _, size in ipairs(sizes) do
      local x = by_size[size]
      cells[#cells + 1] = format("%16s", x and format("%.0f %7.2f", x.rps, x.p99_ms) or "-")
    end
    cells[#cells + 1] = format("  %-22s %d", format("%s, %s", num(r.rps_ratio, "%.2fx"), num(r.p99_ratio, "%.2fx")),
                               errs)
    print(concat(cells, " "))
  end
  print(line)
  print(format("targets: at the largest size, req/s >= 1/%.1f and p99 <= %.1fx of the smallest's", SCALE_LIMIT,
               SCALE_LIMIT))
  for _, t in ipairs(doc.targets) do
    print(format("  %-4s %-92s %s %s", judge(t), t.name, num(t.value, "%.2f"), t.unit))
  end
  for _, r in ipairs(doc.rows) do
    if r.note then print(format("  (%s: %s)", r.label, r.note)) end
  end
end

-- ---- main ----------------------------------------------------------------------

if arg[1] == "--scale" then
  assert(arg[2], "usage: report.lua --scale RESULTS.jsonl OUT.json...")
  local doc = build_scale(read_facts(arg[2]))
  print_scale(doc)
  for i = 3, #arg do write(doc, arg[i]) end
elseif arg[1] == "--median" then
  local out = arg[2]
  local docs = {}
  for i = 3, #arg do
    local f = assert(io.open(arg[i]))
    docs[#docs + 1] = cjson.decode(f:read("*a"))
    f:close()
  end
  assert(#docs > 0, "usage: report.lua --median OUT.json RUN.json...")
  local doc = median_docs(docs)
  print_doc(doc)
  if out ~= "-" then write(doc, out) end
else
  assert(arg[1], "usage: report.lua RESULTS.jsonl OUT.json...")
  local doc = build(read_facts(arg[1]))
  print_doc(doc)
  for i = 2, #arg do write(doc, arg[i]) end
end
