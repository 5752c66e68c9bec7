-- bench/wrk_get.lua — GET of the URL given to wrk, with the bearer token
-- when BENCH_TOKEN is set (/, /healthz, /users?limit=20, the references).
-- luacheck: globals wrk done
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require "wrk_common"

common.bearer()
done = common.done
