-- bench/wrk_user_read.lua — the authenticated single-row read:
-- GET /users/{id} with random ids among the seeded users (1..BENCH_USERS,
-- all present), bearer token from BENCH_TOKEN. The requests are built once
-- in init() (wrk shares the machine with the server: keep the client cheap).
-- luacheck: globals wrk done setup init request tid
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require "wrk_common"

local users = tonumber(os.getenv("BENCH_USERS") or "10000")
local N = 4096

common.bearer()
done = common.done

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local prepared, i = {}, 0

function init()
  math.randomseed(os.time() * 100 + (tid or 0))
  for k = 1, N do
    prepared[k] = wrk.format("GET", "/users/" .. math.random(1, users))
  end
end

function request()
  i = i % N + 1
  return prepared[i]
end
