-- bench/wrk_login.lua — POST /auth/login with the bench admin's credentials
-- (BENCH_EMAIL, BENCH_PASSWORD): one argon2id verify, a session row and two
-- signed tokens per request.
-- luacheck: globals wrk done
package.path = (os.getenv("BENCH_DIR") or "bench") .. "/?.lua;" .. package.path
local common = require "wrk_common"

done = common.done

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"email":"%s","password":"%s"}',
                         os.getenv("BENCH_EMAIL"), os.getenv("BENCH_PASSWORD"))
