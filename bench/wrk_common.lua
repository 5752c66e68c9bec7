-- bench/wrk_common.lua — what every `make bench` wrk script shares: the
-- bearer header (BENCH_TOKEN) and a done() that appends one JSON line with
-- the scenario's numbers to BENCH_OUT (bench/run.sh collects them).
--
--   {"scenario": BENCH_SCENARIO, "requests": n, "duration_s": s, "rps": r,
--    "p50_ms": .., "p90_ms": .., "p99_ms": .., "max_ms": ..,
--    "errors": connect+read+write+timeout, "non2xx": status >= 400}
-- luacheck: globals wrk
local common = {}

function common.bearer()
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
end

function common.done(summary, latency, _)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local line = string.format(
    '{"scenario":"%s","requests":%d,"duration_s":%.3f,"rps":%.1f,'
    .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"errors":%d,"non2xx":%d}\n',
    os.getenv("BENCH_SCENARIO") or "?", summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.timeout, e.status)
  local path = os.getenv("BENCH_OUT")
  if path then
    local f = assert(io.open(path, "a"))
    f:write(line)
    f:close()
  end
  io.write(line)
end

return common
