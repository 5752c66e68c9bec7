-- bench/wrk_writes.lua — writes: POST /user creates a user, and the next
-- request this thread sends deletes it (DELETE /users/{id}), so the table
-- stays the size it was and the mix is half inserts, half deletes.
-- Emails are unique per wrk thread (a random nonce: the warm-up and the
-- recorded run must not collide) and request.
-- luacheck: globals wrk done init request response
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require "wrk_common"

common.bearer()
done = common.done

local created = {}   -- ids this thread created and has not deleted yet
local n = 0
local nonce

function init()
  local f = assert(io.open("/dev/urandom", "rb"))
  nonce = f:read(6):gsub(".", function(c) return string.format("%02x", c:byte()) end)
  f:close()
end

function request()
  local id = table.remove(created)
  if id then
    return wrk.format("DELETE", "/users/" .. id)
  end
  n = n + 1
  local body = string.format('{"email":"w%s-%d@bench.test","name":"bench writer","active":true}',
                             nonce, n)
  -- wrk.format uses the given headers instead of wrk.headers: keep the bearer
  return wrk.format("POST", "/user", {Authorization = wrk.headers.Authorization,
                                      ["Content-Type"] = "application/json"}, body)
end

function response(status, _, body)
  if status == 201 then
    local id = body:match('"id"%s*:%s*(%d+)')
    if id then created[#created + 1] = id end
  end
end
