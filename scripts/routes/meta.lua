-- routes/meta.lua — the service's own routes: identity and health.
local http = require "lib.http"
local info = require "host.info"

local function index()
  return http.ok({service = "moonkeep", version = info.version, docs = "/apidocs"})
end

-- Liveness: the process answers.
local function healthz()
  return http.ok({status = "ok"})
end

-- Readiness: scripts are loaded (this code runs) and the database answers.
local function readyz()
  return http.ok({status = "ready", generation = info.generation})
end

return {
  {"GET", "/", index},
  {"GET", "/healthz", healthz},
  {"GET", "/readyz", readyz},
}
