-- bench/wrk_user_read.lua — the authenticated single-row read:
-- GET /users/{id} with a random id among the seeded users
-- (1..BENCH_USERS, all present), bearer token from BENCH_TOKEN.
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require "wrk_common"

local users = tonumber(os.getenv("BENCH_USERS") or "10000")
local random = math.random

common.bearer()
done = common.done

function setup(thread)
  thread:set("seed", random(1, 2 ^ 30))
end

function init()
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format("GET", "/users/" .. random(1, users))
end
